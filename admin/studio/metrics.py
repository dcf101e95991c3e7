"""``GET /metrics``: the Prometheus exposition of the workers' merged metrics, the database
and the broker, behind a bearer token when ``RYLA_METRICS_TOKEN`` is set.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from pipeline.health import Watch
from pipeline.settings import Settings

__all__ = ["metrics_router"]


def metrics_router(settings: Settings, watches: dict[str, Watch]) -> APIRouter:
    """``watches``: the studio's own, so an outage a scrape meets is told once (``/healthz``)."""
    router = APIRouter()
    held: dict[str, Any] = {}  # the registry holds an engine and a broker client: built once

    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:  # sync: the scrape blocks, so it runs in a thread
        from tasks.metrics import metrics_registry, serve_metrics

        if "registry" not in held:
            held["registry"] = metrics_registry(settings, watches=watches)
        status, body, content_type = serve_metrics(
            held["registry"],
            authorization=request.headers.get("authorization", ""),
            token=settings.metrics_token,
        )
        return Response(body, status_code=status, media_type=content_type)

    return router
