"""The targets page: every publish target with its health; admins re-authorise one with new
secrets (typed into a password field, stored encrypted) or test it without publishing.
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from admin.studio.core import field_of, studio_of
from admin.studio.pages.render import form_of, page, signed_in
from models import Role
from pipeline.browse.review import target_health
from pipeline.errors import InputError
from pipeline.publishers.checks import check_target
from pipeline.publishers.targets import get_target, set_target_secrets

__all__ = [
    "check",
    "reauthorise",
    "targets_page",
    "targets_router",
]

targets_router = APIRouter(include_in_schema=False)
_SECRET_FIELDS = ("access_token", "url", "signing_key")


@targets_router.get("/targets", response_class=HTMLResponse)
def targets_page(request: Request, notice: str = "") -> Response:
    signed_in(request)
    with studio_of(request).session() as session:
        targets = target_health(session)
    return page(request, "targets.html", targets=targets, notice=notice[:300], errors={})


@targets_router.post("/targets/{name}/secrets")
async def reauthorise(request: Request, name: str) -> Response:
    principal = await run_in_threadpool(signed_in, request, Role.ADMIN)
    form = await form_of(request, principal)
    secrets = {k: form[k] for k in _SECRET_FIELDS if form.get(k)}
    studio = studio_of(request)

    def run() -> Response:
        try:
            with studio.session() as session:
                set_target_secrets(
                    session=session,
                    settings=studio.settings,
                    name=name,
                    secrets=secrets,
                    now=studio.clock(),
                )
        except InputError as exc:
            # The secrets are never sent back: the person types them again.
            field = field_of(str(exc), ["url", "signing_key", "access_token"], exc) or "form"
            with studio.session() as session:
                targets = target_health(session)
            errors = {name: {field: str(exc)}}
            return page(request, "targets.html", status_code=422, targets=targets, errors=errors)
        notice = f"target {name}: new secrets stored, its waiting posts resume"
        return RedirectResponse(f"/targets?notice={notice}", status_code=303)

    return await run_in_threadpool(run)


@targets_router.post("/targets/{name}/check")
async def check(request: Request, name: str) -> Response:
    principal = await run_in_threadpool(signed_in, request, Role.ADMIN)
    await form_of(request, principal)
    studio = studio_of(request)

    def run() -> str:
        try:
            with studio.session() as session:
                target = get_target(session, name)
                session.expunge(target)
        except InputError as exc:
            return str(exc)
        with httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
            result = check_target(
                target, settings=studio.settings, client=client, now=studio.clock()
            )
        return f"{name}: {'ok' if result.ok else 'FAILED'}: {result.detail}"

    notice = await run_in_threadpool(run)
    return RedirectResponse(f"/targets?notice={notice}", status_code=303)
