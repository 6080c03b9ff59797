"""Health probes for systemd, load balancers and monitoring; no API key, no secrets."""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from appliance.app_state import Resources
from appliance.errors import ApplianceError


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
async def ready(resources: Resources) -> Response[Readiness]:
    checks: list[ReadinessCheck] = []
    try:
        await resources.keys.probe()
        checks.append(ReadinessCheck("token", ok=True))
    except ApplianceError as exc:
        checks.append(ReadinessCheck("token", ok=False, detail=str(exc)))
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
