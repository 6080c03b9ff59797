"""Health probes for systemd, load balancers and monitoring; no API key, no secrets."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from appliance.app_state import Resources
from appliance.errors import ApplianceError

# Long enough that a flood of probes costs one token signature per interval, short enough that
# a token that went away shows within a monitoring system's scrape interval.
PROBE_CACHE_SECONDS = 2.0


class ReadinessCheck(msgspec.Struct):
    name: str
    ok: bool
    detail: str = ""


class Readiness(msgspec.Struct):
    status: str
    checks: list[ReadinessCheck]


@get("/health/live", tags=["Health"], summary="The process answers")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@get("/health/ready", tags=["Health"], summary="The token signs and the registry answers")
async def ready(resources: Resources, state: State) -> Response[Readiness]:
    cache: ProbeCache = state.setdefault("readiness_probe_cache", ProbeCache())
    checks = [await cache.token_check(resources)]
    try:
        await resources.registry.count_by_status()
        checks.append(ReadinessCheck("registry", ok=True))
    except ApplianceError as exc:
        checks.append(ReadinessCheck("registry", ok=False, detail=str(exc)))
    healthy = all(check.ok for check in checks)
    return Response(
        Readiness(status="ready" if healthy else "unavailable", checks=checks),
        status_code=HTTP_200_OK if healthy else HTTP_503_SERVICE_UNAVAILABLE,
    )


class ProbeCache:
    """The token probe's outcome, reused for PROBE_CACHE_SECONDS.

    The endpoint needs no API key, and each probe is a signature in the token: without the cache
    a flood of probes competes with registrations for the token. Concurrent callers on an expired
    entry wait for one probe instead of starting one each.
    """

    def __init__(self, ttl: float = PROBE_CACHE_SECONDS) -> None:
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._check: ReadinessCheck | None = None
        self._checked_at = float("-inf")

    async def token_check(self, resources: Resources) -> ReadinessCheck:
        if self._check is not None and time.monotonic() - self._checked_at < self._ttl:
            return self._check
        async with self._lock:
            if self._check is not None and time.monotonic() - self._checked_at < self._ttl:
                return self._check
            try:
                await resources.keys.probe()
                check = ReadinessCheck("token", ok=True)
            except ApplianceError as exc:
                check = ReadinessCheck("token", ok=False, detail=str(exc))
            self._check, self._checked_at = check, time.monotonic()
            return check
