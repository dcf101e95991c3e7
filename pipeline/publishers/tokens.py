"""Keeping Instagram-login tokens alive: refresh each after 24 h, well before its 60 days end.

A refresh that is refused marks the target for re-authorisation; its posts wait, none is lost.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import PublishTarget, TargetKind
from pipeline.crypto import decrypt_secrets, encrypt_secrets
from pipeline.db import session_scope
from pipeline.errors import AuthExpired, PublishError
from pipeline.publishers.graph_api import refresh_long_lived_token
from pipeline.publishers.instagram import DEFAULT_BASE_URL
from pipeline.settings import Settings, load_secret_key

__all__ = ["refresh_due_tokens", "token_dates", "token_due"]

log = logging.getLogger(__name__)
MIN_AGE = timedelta(hours=24)  # Meta refuses to refresh a younger token
REFRESH_WITHIN = timedelta(days=50)  # of expiry: about every ten days for a 60-day token


def token_due(config: dict[str, str], now: datetime) -> bool:
    """Whether a target's token should be refreshed now (Instagram login only)."""
    base_url = str(config.get("base_url") or DEFAULT_BASE_URL)
    login = config.get("login") or ("facebook" if "graph.facebook.com" in base_url else "instagram")
    if login != "instagram":
        return False  # Facebook-login tokens are managed through the Facebook app instead
    refreshed = config.get("token_refreshed_at")
    if refreshed and now - datetime.fromisoformat(refreshed) < MIN_AGE:
        return False
    expires = config.get("token_expires_at")
    return not expires or datetime.fromisoformat(expires) - now <= REFRESH_WITHIN


def refresh_due_tokens(
    factory: sessionmaker[Session], *, settings: Settings, client: httpx.Client, now: datetime
) -> int:
    """Refresh every due token, each on its own: HTTP calls happen outside any transaction."""
    with session_scope(factory) as session:
        due = [
            target.id
            for target in session.scalars(
                select(PublishTarget).where(
                    PublishTarget.kind == TargetKind.INSTAGRAM,
                    PublishTarget.needs_reauth.is_(False),
                    PublishTarget.secrets_encrypted.is_not(None),
                )
            )
            if token_due(target.config, now)
        ]
    renewed = 0
    for target_id in due:
        try:
            renewed += _refresh(factory, target_id, settings, client, now)
        except Exception:  # one broken target must not stop the others
            log.exception("target %s: token refresh crashed", target_id)
    return renewed


def _refresh(
    factory: sessionmaker[Session],
    target_id: int,
    settings: Settings,
    client: httpx.Client,
    now: datetime,
) -> bool:
    key = load_secret_key(settings)
    with session_scope(factory) as session:
        target = session.get_one(PublishTarget, target_id)
        name, config = target.name, dict(target.config)
        secrets = decrypt_secrets(target.secrets_encrypted or "", key)
    try:
        fresh = refresh_long_lived_token(
            client=client,
            base_url=str(config.get("base_url") or DEFAULT_BASE_URL),
            access_token=str(secrets.get("access_token", "")),
            now=now,
        )
    except AuthExpired as exc:
        with session_scope(factory) as session:
            session.get_one(PublishTarget, target_id).needs_reauth = True
        log.error("target %s: token refresh refused (%s); re-authorise it", name, exc)
        return False
    except PublishError as exc:
        log.warning("target %s: token refresh failed (%s); will try again", name, exc)
        return False
    with session_scope(factory) as session:
        target = session.get_one(PublishTarget, target_id)
        target.secrets_encrypted = encrypt_secrets(
            {**secrets, "access_token": fresh.access_token}, key
        )
        target.config = {**target.config, **token_dates(now, fresh.expires_at)}
    log.info("target %s: token refreshed, valid until %s", name, fresh.expires_at)
    return True


def token_dates(refreshed_at: datetime, expires_at: datetime | None = None) -> dict[str, str]:
    """The config entries that say how old a token is (never the token itself)."""
    dates = {"token_refreshed_at": refreshed_at.isoformat()}
    if expires_at is not None:
        dates["token_expires_at"] = expires_at.isoformat()
    return dates
