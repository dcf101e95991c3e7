"""``/healthz``: whether the database and the broker answer the studio, for load balancers and
container health checks. 200 when both do; 503 with JSON naming the one that does not, since
when and why (credentials hidden). Public, like the media URLs: it tells nothing but that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from pipeline.health import HealthCheck, HealthReport, probe_database, watch_engine
from pipeline.settings import Settings

__all__ = ["health_router", "studio_health"]


def studio_health(settings: Settings, engine: Engine) -> HealthCheck:
    """Probes of the studio's own engine and of the broker its claims go to. The database's
    watch also hears every request's connection errors, so the log says once when the
    database goes away and once when it is back, whether or not anyone asks ``/healthz``."""
    held: dict[str, Any] = {}

    def broker() -> None:
        from tasks.app import create_app as create_celery
        from tasks.broker import probe_broker

        if "app" not in held:
            held["app"] = create_celery(settings)
        probe_broker(held["app"])()

    check = HealthCheck({"database": probe_database(engine), "broker": broker})
    watch_engine(engine, check.watches["database"])
    return check


def health_router(report: Callable[[], HealthReport]) -> APIRouter:
    router = APIRouter()

    # Sync: a probe of a dependency that is away blocks up to its connect timeout, in a thread.
    @router.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    def healthz() -> JSONResponse:
        answer = report()
        return JSONResponse(answer.as_dict(), status_code=200 if answer.ok else 503)

    return router
