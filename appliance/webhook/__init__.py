"""The webhook receiver at `webhooks.url`: signed POSTs of invoice status changes."""

from appliance.webhook.client import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookClient,
    WebhookFailed,
    read_webhook_secret,
    sign_payload,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookClient",
    "WebhookFailed",
    "read_webhook_secret",
    "sign_payload",
]
