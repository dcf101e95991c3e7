"""Who may use the studio: users (Argon2 passwords, roles), API tokens, browser sessions, and
the throttle on sign-in tries. Shared by ``ryla user|token`` and the studio's web app.

Tokens and session ids are random, shown once, and stored only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Mapped, Session

from models import ApiToken, LoginAttempt, Role, StudioSession, TokenScope, User
from pipeline.errors import InputError, NotFound

__all__ = [
    "FAILURES_PER_CLIENT",
    "FAILURES_PER_NAME",
    "SESSION_HOURS",
    "TOKEN_PREFIX",
    "AccessChange",
    "LoginRefused",
    "LoginThrottled",
    "Principal",
    "create_token",
    "create_user",
    "digest",
    "end_session",
    "list_tokens",
    "list_users",
    "log_in",
    "revoke_token",
    "session_principal",
    "set_access",
    "set_password",
    "start_session",
    "token_principal",
]

TOKEN_PREFIX = "ryla_"
SESSION_HOURS = 12
FAILURES_PER_NAME = 5  # in THROTTLE_WINDOW: then that name waits
FAILURES_PER_CLIENT = 20  # in THROTTLE_WINDOW: then that address waits
THROTTLE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD = 10
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_hasher = PasswordHasher()  # Argon2id with the library's current defaults
# Checked against when the name is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class LoginRefused(Exception):
    """Wrong name or password (which one is never said)."""


class LoginThrottled(Exception):
    """Too many failed sign-ins lately; ``retry_after`` seconds until the next try counts."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    """Who is asking, and with what: a session (with its CSRF token) or an API token."""

    user_id: int
    username: str
    role: Role
    via: str  # "session" | "token" | "read-only token"
    csrf_token: str = ""

    def can(self, needed: Role) -> bool:
        return self.role.rank >= needed.rank


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"password is {len(password)} characters: use at least {MIN_PASSWORD} characters"
        )


def create_user(*, session: Session, username: str, password: str, role: Role) -> User:
    if not _USERNAME.match(username):
        raise InputError(
            f"invalid user name {username!r}: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    _check_password(password)
    if session.scalars(select(User.id).where(User.username == username)).first():
        raise InputError(f"user {username!r} already exists: choose another name")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def _user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(
            f"unknown user {username!r}: list them with `ryla user list`", field="username"
        )
    return user


def set_password(*, session: Session, username: str, password: str) -> None:
    """A new password; the user's open browser sessions end."""
    user = _user(session, username)
    _check_password(password)
    user.password_hash = _hasher.hash(password)
    session.execute(delete(StudioSession).where(StudioSession.user_id == user.id))


@dataclass(frozen=True)
class AccessChange:
    """What ``set_access`` did: the user as they now are, and what it changed."""

    username: str
    role: Role
    active: bool
    changed: bool
    sessions_ended: int
    live_tokens: int  # unrevoked tokens, counted when ``active`` was given


def set_access(
    *, session: Session, username: str, active: bool | None = None, role: Role | None = None
) -> AccessChange:
    """Disable or enable a user, or give them another role.

    Disabling ends the user's browser sessions; their tokens are kept but refused while the
    user is disabled (every request reads the user). A new role applies from the next request.
    """
    user = _user(session, username)
    changed = (active is not None and user.active != active) or (
        role is not None and user.role != role
    )
    ended = live = 0
    if role is not None:
        user.role = role
    if active is not None:
        user.active = active
        if not active:
            result = session.execute(delete(StudioSession).where(StudioSession.user_id == user.id))
            ended = int(getattr(result, "rowcount", 0) or 0)
        live = int(
            session.scalar(
                select(func.count())
                .select_from(ApiToken)
                .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            )
            or 0
        )
    return AccessChange(user.username, user.role, user.active, changed, ended, live)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def _failures(session: Session, column: Mapped[str], value: str, since: datetime) -> int:
    stmt = select(func.count()).where(
        column == value,
        LoginAttempt.at >= since,
        LoginAttempt.succeeded.is_(False),
    )
    return int(session.scalar(stmt) or 0)


def log_in(session: Session, *, username: str, password: str, client: str, now: datetime) -> User:
    """The user, if the name and password match and neither is throttled; every try is kept.

    The caller commits whatever happens: a failed try must count.
    """
    if "\x00" in username + password:  # no user has one; PostgreSQL text cannot hold it
        raise LoginRefused("wrong user name or password")
    since = now - THROTTLE_WINDOW
    name, client = username[:64], client[:64]
    if (
        _failures(session, LoginAttempt.username, name, since) >= FAILURES_PER_NAME
        or _failures(session, LoginAttempt.client, client, since) >= FAILURES_PER_CLIENT
    ):
        raise LoginThrottled(int(THROTTLE_WINDOW.total_seconds()))
    user = session.scalars(select(User).where(User.username == name)).first()
    ok = _verify(user.password_hash if user else _DUMMY_HASH, password) and bool(
        user and user.active
    )
    session.add(LoginAttempt(username=name, client=client, at=now, succeeded=ok))
    # Old tries say nothing about the next one: keep the table small.
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(days=1)))
    if not ok or user is None:
        raise LoginRefused("wrong user name or password")
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def start_session(session: Session, user: User, *, now: datetime) -> str:
    """A new browser session; returns the cookie value (only its digest is stored)."""
    cookie = secrets.token_urlsafe(32)
    session.add(
        StudioSession(
            id=digest(cookie),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS),
        )
    )
    session.execute(delete(StudioSession).where(StudioSession.expires_at < now))
    return cookie


def session_principal(session: Session, cookie: str, *, now: datetime) -> Principal | None:
    row = session.execute(
        select(StudioSession.csrf_token, User)
        .join(User, User.id == StudioSession.user_id)
        .where(StudioSession.id == digest(cookie), StudioSession.expires_at > now)
    ).first()
    if row is None or not row[1].active:
        return None
    csrf, user = row
    return Principal(user.id, user.username, user.role, "session", csrf)


def end_session(session: Session, cookie: str) -> None:
    session.execute(delete(StudioSession).where(StudioSession.id == digest(cookie)))


def create_token(
    *, session: Session, username: str, name: str, scope: TokenScope, now: datetime
) -> str:
    """A new API token for the user; the text is returned once and never stored."""
    user = _user(session, username)
    if not name.strip() or len(name) > 100:
        raise InputError(f"token name {name!r}: give 1-100 characters saying what uses it")
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            name=name.strip(),
            scope=scope,
            token_hash=digest(text),
            prefix=text[: len(TOKEN_PREFIX) + 6],
            created_at=now,
        )
    )
    session.flush()
    return text


def list_tokens(session: Session) -> list[tuple[ApiToken, str]]:
    stmt = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
    return [(token, name) for token, name in session.execute(stmt.order_by(ApiToken.id))]


def revoke_token(*, session: Session, token_id: int, now: datetime) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(
            f"unknown token {token_id}: list them with `ryla token list`", field="token_id"
        )
    token.revoked_at = token.revoked_at or now
    return token


def token_principal(session: Session, text: str, *, now: datetime) -> Principal | None:
    """The token's user, with its role capped by the token's scope (read means viewer)."""
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest(text), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None or not row[1].active:
        return None
    token, user = row
    # One write a minute at most: a busy integration must not turn every read into a write.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    if token.scope is TokenScope.WRITE:
        return Principal(user.id, user.username, user.role, "token")
    return Principal(user.id, user.username, Role.VIEWER, "read-only token")
