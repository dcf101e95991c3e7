"""What every page shares: the templates, signed image links, who is signed in (else a
redirect to the sign-in page), and reading a form with its CSRF token checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from admin.access import Principal
from admin.studio.core import check_csrf, principal_of, require, studio_of
from admin.studio.present import Links
from models import Post, Role
from pipeline.browse.posts import NEEDS_PERSON, needs_person

__all__ = [
    "QUEUE_CAP",
    "TEMPLATES",
    "bare_error_page",
    "form_of",
    "page",
    "render_error",
    "signed_in",
]

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
TEMPLATES.env.globals["NEEDS_PERSON"] = [str(s) for s in NEEDS_PERSON]
TEMPLATES.env.filters["tzinfo"] = ZoneInfo


def signed_in(request: Request, role: Role = Role.VIEWER) -> Principal:
    """The signed-in person; 401 (the app redirects to /login) or 403 otherwise."""
    return require(request, role)


QUEUE_CAP = 99  # the badge says "99+" beyond this: counting 40,000 failures costs a page


def _queue_count(request: Request) -> int:
    with studio_of(request).session() as session:
        waiting = select(Post.id).where(needs_person()).limit(QUEUE_CAP + 1)
        return int(session.scalar(select(func.count()).select_from(waiting.subquery())) or 0)


def page(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    principal = principal_of(request)
    studio = studio_of(request)
    base = {
        "principal": principal,
        "links": Links.of(studio, absolute=False),
        "queue_count": _queue_count(request) if principal else 0,
        "can_edit": bool(principal and principal.can(Role.EDITOR)),
        "is_admin": bool(principal and principal.can(Role.ADMIN)),
        "path": request.url.path,
    }
    return TEMPLATES.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def bare_error_page(
    request: Request, status_code: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The error page drawn without the database (nobody looked up): for a request refused
    before any route, or while the database is away."""
    context = {"principal": None, "code": status_code, "message": message, "path": request.url.path}
    return TEMPLATES.TemplateResponse(
        request, "error.html", context, status_code=status_code, headers=headers
    )


def render_error(request: Request, status_code: int, message: str) -> HTMLResponse:
    return page(request, "error.html", status_code=status_code, message=message, code=status_code)


async def form_of(request: Request, principal: Principal) -> dict[str, str]:
    """The submitted form's text fields, after its CSRF token matched the session's."""
    form = await request.form()
    token = form.get("csrf_token")
    check_csrf(request, principal, token if isinstance(token, str) else None)
    return {key: value for key, value in form.items() if isinstance(value, str)}
