"""A person's actions on a post from a page (approve, reject with a note, regenerate, render,
publish now, edit the caption, cancel, resolve): the same ``perform`` as the API, then back to
the page they came from with a one-line notice.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from admin.access import Principal
from admin.studio.actions import ACTION_NAMES, ActionIn, perform, status_after
from admin.studio.core import studio_of
from admin.studio.pages.auth import safe_next
from admin.studio.pages.render import form_of, signed_in
from models import Role
from pipeline.errors import InputError

__all__ = [
    "act",
    "actions_router",
]

actions_router = APIRouter(include_in_schema=False)


def _run(request: Request, principal: Principal, post_id: int, action: ActionIn) -> str:
    """Do the action; the notice says what happened, or why it did not."""
    studio = studio_of(request)
    try:
        with studio.session() as session:
            claims = perform(session, studio, post_id, action, actor=f"studio:{principal.username}")
            status = status_after(session, post_id)
    except InputError as exc:
        return f"not done: {exc}"
    queued = studio.dispatch(claims)
    late = "" if queued else " (the broker is unreachable: the beat will send it)"
    return f"post {post_id}: {action.name} done, now {status}{late}"


@actions_router.post("/posts/{post_id}/do/{name}")
async def act(
    request: Request, post_id: Annotated[int, Path(ge=1, lt=2**31)], name: str
) -> Response:
    principal = await run_in_threadpool(signed_in, request, Role.EDITOR)
    form = await form_of(request, principal)
    target = safe_next(form.get("next") or f"/posts/{post_id}")
    if name not in ACTION_NAMES:
        notice = f"not done: unknown action {name!r}"
    else:
        published = {"yes": True, "no": False}.get(form.get("published", ""))
        action = ActionIn(
            name,
            note=form.get("note", ""),
            caption=form.get("caption", ""),
            published=published,
            media_id=form.get("media_id") or None,
        )
        notice = await run_in_threadpool(_run, request, principal, post_id, action)
    path, _, fragment = target.partition("#")
    joiner = "&" if "?" in path else "?"
    suffix = f"#{fragment}" if fragment else ""
    return RedirectResponse(f"{path}{joiner}{urlencode({'notice': notice})}{suffix}", 303)
