"""What every studio route shares: the ``Studio`` (settings, sessions, clock, the broker hook),
who is asking (session cookie or bearer token), role checks, CSRF, and input errors as fields.

Nothing here is public by accident: a route gets a ``Principal`` only through ``signed_in``.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from admin.access import Principal, session_principal, token_principal
from models import Role
from pipeline.db import session_scope
from pipeline.errors import InputError, NotFound
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "InputProblem",
    "Studio",
    "admin_user",
    "check_csrf",
    "editor",
    "field_of",
    "input_errors",
    "principal_of",
    "problem_answer",
    "problem_status",
    "reader",
    "require",
    "studio_of",
]

log = logging.getLogger(__name__)
COOKIE = "ryla_session"
CSRF_HEADER = "x-csrf-token"
_SAFE = {"GET", "HEAD", "OPTIONS"}
_UNKNOWN = object()  # the request has not been looked at yet (None: looked, nobody)


@dataclass
class Studio:
    settings: Settings
    factory: sessionmaker[Session]
    clock: Callable[[], datetime]
    # Sends claimed work to the broker, after the claim has committed (tasks.send in production).
    send: Callable[[list[Dispatch]], None]
    secret: str  # signs media URLs

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.factory) as session:
            yield session

    def dispatch(self, dispatches: list[Dispatch]) -> bool:
        """Hand claims to the broker; if it is down the beat re-sends them when the lease ends."""
        if not dispatches:
            return True
        try:
            self.send(dispatches)
        except Exception:  # kombu raises a zoo of transport errors
            log.exception("broker unreachable: %d claim(s) wait for their lease", len(dispatches))
            return False
        return True


def studio_of(request: Request) -> Studio:
    studio = request.app.state.studio
    assert isinstance(studio, Studio)
    return studio


def principal_of(request: Request) -> Principal | None:
    """Who is asking: a bearer token wins over a cookie; None when neither is valid."""
    cached = getattr(request.state, "principal", _UNKNOWN)
    if cached is not _UNKNOWN:
        return cast(Principal | None, cached)
    studio = studio_of(request)
    header = request.headers.get("authorization", "")
    found: Principal | None = None
    with studio.session() as session:
        if header[:7].lower() == "bearer ":
            found = token_principal(session, header[7:].strip(), now=studio.clock())
        elif cookie := request.cookies.get(COOKIE):
            found = session_principal(session, cookie, now=studio.clock())
    request.state.principal = found
    return found


def check_csrf(request: Request, principal: Principal, form_token: str | None) -> None:
    """A cookie-signed change must carry the session's CSRF token (form field or header)."""
    if principal.via != "session" or request.method in _SAFE:
        return
    given = form_token or request.headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given, principal.csrf_token):
        raise HTTPException(403, "the form is stale or forged (CSRF check failed): reload the page")


def require(request: Request, role: Role) -> Principal:
    """The principal if signed in with at least ``role``: 401 when not signed in, 403 when too
    weak (a read-scoped token counts as a viewer)."""
    principal = principal_of(request)
    if principal is None:
        raise HTTPException(
            401,
            "sign in, or send an API token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not principal.can(role):
        who = (
            f"{principal.username}'s read-only token"
            if principal.via.startswith("read")
            else (f"{principal.username} ({principal.role})")
        )
        raise HTTPException(403, f"{who} may not do this: it needs the {role} role or higher")
    return principal


_WORDS = re.compile(r"[a-z]+")
# Field names that are everyday words: a message naming them is not about them.
_COMMON_WORDS = frozenset({"at", "to", "from", "note", "days", "state", "limit"})
# The pipeline's names for fields the API spells otherwise.
_API_NAMES = {"publish_at": "at", "default_hashtags": "hashtags"}


def field_of(message: str, fields: Sequence[str], exc: Any = None) -> str | None:
    """Which of the request's fields an input error is about: the error's own ``field`` when it
    has one, else the first field the message names ("time zone" for ``timezone``, "time" for
    ``times``, "lead time" for ``lead_minutes``)."""
    named = getattr(exc, "field", None)
    if isinstance(named, str) and named:
        return _API_NAMES.get(named, named) if _API_NAMES.get(named) in fields else named
    text = message.lower()
    words = set(_WORDS.findall(text))
    joined = "".join(text.split())
    for name in fields:
        parts = name.lower().split("_")
        if name.lower() in _COMMON_WORDS:  # "at", "to", "from" appear in any sentence
            continue
        phrase = re.search(rf"\b{re.escape(' '.join(parts))}\b", text)
        if phrase or (len(parts) > 1 and "".join(parts) in joined):
            return name
        single = parts[0].removesuffix("s")
        if parts[0] in words or (len(single) > 3 and single in words):
            return name
        if len(parts) == 1 and len(name) > 6 and name.lower() in joined:
            return name
    return None


class InputProblem(Exception):
    """A pipeline ``InputError`` tied to the request field it is about (None: the whole body);
    ``missing``: what that field names does not exist."""

    def __init__(self, message: str, field: str | None, *, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.missing = missing


@contextmanager
def input_errors(fields: Sequence[str]) -> Iterator[None]:
    """Turn the pipeline's input errors into ``InputProblem``s naming one of ``fields``."""
    try:
        yield
    except InputError as exc:
        field = field_of(str(exc), fields, exc)
        raise InputProblem(str(exc), field, missing=isinstance(exc, NotFound)) from None


def problem_status(request: Request, problem: InputProblem) -> tuple[int, list[str]]:
    """404 for a name in the URL's path that does not exist, else 422; and ``loc``: where the
    field was sent (path, query or body)."""
    field = problem.field
    where = "body"
    if field is not None and field in request.path_params:
        where = "path"
    elif field is not None and field in request.query_params:
        where = "query"
    status = 404 if problem.missing and where == "path" else 422
    return status, [where, field] if field else [where]


def problem_answer(request: Request, problem: InputProblem) -> JSONResponse:
    """The API's 4xx, in FastAPI's validation-error shape."""
    status, loc = problem_status(request, problem)
    kind = "not_found" if status == 404 else "value_error"
    body = {"detail": [{"loc": loc, "msg": problem.message, "type": kind}]}
    return JSONResponse(body, status_code=status)


def reader(request: Request) -> Principal:
    """A dependency: any signed-in user or token."""
    return require(request, Role.VIEWER)


def editor(request: Request) -> Principal:
    """A dependency: an editor or admin; a cookie-signed change carries the CSRF header."""
    principal = require(request, Role.EDITOR)
    check_csrf(request, principal, None)
    return principal


def admin_user(request: Request) -> Principal:
    principal = require(request, Role.ADMIN)
    check_csrf(request, principal, None)
    return principal
