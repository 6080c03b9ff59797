"""Webhook settings: a URL without a usable HMAC key stops start-up with the setting named."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from appliance.config import WebhookSettings
from appliance.errors import ConfigError
from appliance.webhook import read_webhook_secret, sign_payload


def test_off_without_url() -> None:
    assert read_webhook_secret(WebhookSettings()) is None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (WebhookSettings(url="http://127.0.0.1:9/hook"), "webhooks.secret_file is required"),
        (WebhookSettings(url="ftp://example/hook", secret_file="/x"), "webhooks.url"),
        (WebhookSettings(url="http://127.0.0.1:9/hook", secret_file="/nonexistent/secret"), "cannot read"),
    ],
)
def test_refused_settings_name_the_problem(settings: WebhookSettings, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        read_webhook_secret(settings)


def test_short_secret_refused_and_signature_is_hmac_sha256(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"too short\n")
    with pytest.raises(ConfigError, match="fewer than 16 bytes"):
        read_webhook_secret(WebhookSettings(url="https://hooks.local/x", secret_file=str(short)))
    good = tmp_path / "good"
    good.write_bytes(b"0123456789abcdef0123\n")
    secret = read_webhook_secret(WebhookSettings(url="https://hooks.local/x", secret_file=str(good)))
    assert secret == b"0123456789abcdef0123"
    expected = hmac.new(secret, b"1700000000." + b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign_payload(secret, "1700000000", b'{"a":1}') == f"sha256={expected}"
