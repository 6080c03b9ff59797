"""WebhookClient: POSTs one stored event to `webhooks.url`, signed with HMAC-SHA256.

The receiver checks `X-Appliance-Signature: sha256=<hex>` = HMAC-SHA256(secret, timestamp + "." +
body), with `X-Appliance-Timestamp` (Unix seconds) so a captured request cannot be replayed later,
and deduplicates on `X-Appliance-Event-Id` (delivery is at least once: an answer lost on the way
back means the same event again).

Errors: `WebhookFailed` for anything but a 2xx (timeout, connection refused, any other status),
raised `from` the transport error. Logs never carry the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import httpx

from appliance.config import WebhookSettings
from appliance.errors import ApplianceError, ConfigError

SIGNATURE_HEADER = "X-Appliance-Signature"
TIMESTAMP_HEADER = "X-Appliance-Timestamp"
EVENT_HEADER = "X-Appliance-Event-Id"


class WebhookFailed(ApplianceError):
    code = "Webhook-Failed"


def sign_payload(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def read_webhook_secret(settings: WebhookSettings) -> bytes | None:
    """The HMAC key, or None when webhooks are off; a URL without a readable key is a startup error."""
    if settings.url is None:
        return None
    if not settings.url.startswith(("http://", "https://")):
        raise ConfigError(f"webhooks.url must be an http(s) URL, not {settings.url!r}")
    if settings.secret_file is None:
        raise ConfigError("webhooks.secret_file is required when webhooks.url is set (the HMAC key)")
    try:
        secret = Path(settings.secret_file).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read webhooks.secret_file {settings.secret_file}: {exc.strerror}") from exc
    if len(secret) < 16:
        raise ConfigError(f"webhooks.secret_file {settings.secret_file} holds fewer than 16 bytes")
    return secret


class WebhookClient:
    def __init__(self, url: str, secret: bytes, timeout_seconds: float) -> None:
        self._url = url
        self._secret = secret
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
            follow_redirects=False,
        )

    async def post(self, event_id: str, body: bytes) -> int:
        """Send one event; returns the 2xx status, raises `WebhookFailed` otherwise."""
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign_payload(self._secret, timestamp, body),
        }
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise WebhookFailed(f"webhook POST failed: {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise WebhookFailed(f"webhook receiver answered {response.status_code}")
        return response.status_code

    async def aclose(self) -> None:
        await self._http.aclose()
