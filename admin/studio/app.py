"""The studio as one ASGI app: ``create_app(settings)`` wires the public media URLs and
``/healthz``, the authenticated ``/api/v1`` and the web pages, with one error shape for each.

The OpenAPI schema is served at ``/api/v1/openapi.json`` to signed-in users and tokens only;
no documentation UI is served (it would load scripts from a CDN).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.access import Principal
from admin.studio.api_plan import plan_router
from admin.studio.api_posts import posts_router
from admin.studio.api_status import status_router
from admin.studio.core import InputProblem, Studio, problem_answer, problem_status, reader
from admin.studio.guard import Refused, RequestGuard, refusal_response
from admin.studio.health import health_router, studio_health
from admin.studio.media import media_router
from admin.studio.metrics import metrics_router
from admin.studio.pages import PAGE_ROUTERS, render_error
from admin.studio.pages.render import bare_error_page
from models import utcnow
from pipeline.db import make_engine, make_session_factory
from pipeline.errors import InputError, NotFound
from pipeline.health import HealthCheck, database_unreachable
from pipeline.settings import Settings, load_secret_key
from pipeline.steps.claims import Dispatch

__all__ = [
    "ServerTiming",
    "create_app",
]

STATIC = Path(__file__).parent / "static"


def _celery_sender(settings: Settings) -> Callable[[list[Dispatch]], None]:
    """Claims go out through the same Celery app and routes as the beat's."""
    held: dict[str, Any] = {}

    def send(dispatches: list[Dispatch]) -> None:
        from tasks.app import create_app as create_celery
        from tasks.send import send_dispatches

        if "app" not in held:
            held["app"] = create_celery(settings)
        send_dispatches(dispatches, held["app"])

    return send


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    send: Callable[[list[Dispatch]], None] | None = None,
    health: HealthCheck | None = None,
) -> FastAPI:
    engine = make_engine(settings)
    health = health or studio_health(settings, engine)
    studio = Studio(
        settings=settings,
        factory=make_session_factory(engine),
        clock=clock,
        send=send or _celery_sender(settings),
        secret=load_secret_key(settings),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="RYLA Content Studio API",
        version="1",
        description="Plan, review, approve and trigger posts. Send a token from "
        "`ryla token create` as `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.studio = studio
    app.include_router(media_router(settings.public_base_url))
    app.include_router(health_router(health.report))
    app.include_router(metrics_router(settings, health.watches))
    for router in (posts_router, plan_router, status_router):
        app.include_router(router)
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_schema_route(app)
    _add_error_handlers(app)
    app.add_middleware(RequestGuard)
    app.add_middleware(ServerTiming)
    return app


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>`` to every answer: the time spent in the app, which
    browsers' developer tools show and the benchmark reads (a pure ASGI wrapper: no copies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                spent = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={spent:.1f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


def _add_schema_route(app: FastAPI) -> None:
    @app.get("/api/v1/openapi.json", include_in_schema=False)
    def openapi(_: Annotated[Principal, Depends(reader)]) -> dict[str, Any]:
        return app.openapi()


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return refusal_response(request, exc)

    @app.exception_handler(InputProblem)
    async def input_problem(request: Request, exc: InputProblem) -> Response:
        if _is_api(request):
            return problem_answer(request, exc)
        return render_error(request, problem_status(request, exc)[0], exc.message)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> Response:
        problem = InputProblem(str(exc), exc.field, missing=isinstance(exc, NotFound))
        return await input_problem(request, problem)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        if exc.status_code == 401:
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/login?next={target}", status_code=303)
        return render_error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> Response:
        if not database_unreachable(exc):
            raise exc  # a bug: Starlette's 500, with its traceback in the log
        return _database_away(request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if _is_api(request):
            return JSONResponse({"detail": errors}, status_code=422)
        first = errors[0] if errors else {"loc": [], "msg": "bad request"}
        where = ".".join(str(part) for part in first["loc"][1:])
        return render_error(request, 422, f"{where}: {first['msg']}")


_AWAY = "the database is unreachable; the studio keeps retrying: try again in a moment"


def _database_away(request: Request) -> Response:
    """503 while the database is away (its watch has logged that once): no traceback per
    request, and a page that needs no database to draw (nobody is looked up)."""
    headers = {"Retry-After": "10"}
    if _is_api(request):
        return JSONResponse({"detail": _AWAY}, status_code=503, headers=headers)
    return bare_error_page(request, 503, _AWAY, headers)
