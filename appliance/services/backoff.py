"""Retry delays shared by the outbox (ZATCA deliveries) and the webhook dispatcher."""

from __future__ import annotations

import random


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential up to `max_seconds`,
    jittered into its upper half so retries that failed together spread out."""
    delay = min(max_seconds, base_seconds * 2.0 ** min(attempts, 20))
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
