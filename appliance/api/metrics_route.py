"""`GET /metrics`: Prometheus text format, no API key (scrapers sit on the management network)."""

from __future__ import annotations

from litestar import Response, get

from appliance.app_state import Resources
from appliance.metrics import CONTENT_TYPE


@get(
    "/metrics",
    tags=["Operations"],
    summary="Prometheus metrics",
    include_in_schema=True,
    media_type=CONTENT_TYPE,
)
async def metrics(resources: Resources) -> Response[bytes]:
    return Response(resources.metrics.render(), media_type=CONTENT_TYPE)
