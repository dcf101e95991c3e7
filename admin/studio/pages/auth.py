"""Signing in and out of the studio: a throttled password check, then an HttpOnly, SameSite
session cookie. The sign-in form carries its own CSRF token (a cookie it must match).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin.access import LoginRefused, LoginThrottled, end_session, log_in, start_session
from admin.studio.core import COOKIE, studio_of
from admin.studio.pages.render import form_of, page, signed_in

__all__ = [
    "auth_router",
    "login",
    "login_form",
    "logout",
    "safe_next",
]

auth_router = APIRouter(include_in_schema=False)
_LOGIN_CSRF = "ryla_login"


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/calendar"
    return target


def _login_page(request: Request, *, next_: str, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(
        request, "login.html", status_code=status, error=error, next=next_, login_token=token
    )
    response.set_cookie(
        _LOGIN_CSRF, token, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@auth_router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_=safe_next(next))


@auth_router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/calendar",
) -> Response:
    studio = studio_of(request)
    expected = request.cookies.get(_LOGIN_CSRF, "")
    if not expected or not hmac.compare_digest(expected, login_token):
        return _login_page(
            request, next_=safe_next(next), error="the form expired: sign in again", status=403
        )
    client = request.client.host if request.client else "unknown"
    try:
        with studio.session() as session:
            try:
                user = log_in(
                    session, username=username, password=password, client=client, now=studio.clock()
                )
                cookie = start_session(session, user, now=studio.clock())
            except LoginRefused as exc:
                refused = str(exc)
            else:
                refused = ""
    except LoginThrottled as exc:
        response = _login_page(request, next_=safe_next(next), error=str(exc), status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if refused:
        return _login_page(request, next_=safe_next(next), error=refused, status=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, cookie, httponly=True, samesite="lax", secure=_secure(request), max_age=12 * 3600
    )
    response.delete_cookie(_LOGIN_CSRF)
    return response


@auth_router.post("/logout")
async def logout(request: Request) -> Response:
    principal = signed_in(request)
    await form_of(request, principal)
    cookie = request.cookies.get(COOKIE, "")
    with studio_of(request).session() as session:
        end_session(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
