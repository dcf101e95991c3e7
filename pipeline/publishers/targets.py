"""Publish targets: where an influencer's posts go, with secrets encrypted before they are stored.

Every field is checked before anything is written; a secret never appears in an error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    Post,
    PublishTarget,
    TargetKind,
)
from pipeline.crypto import encrypt_secrets
from pipeline.errors import InputError, NotFound
from pipeline.planning.influencers import get_influencer
from pipeline.publishers.tokens import token_dates
from pipeline.settings import Settings, load_secret_key
from pipeline.validation import check_name, inserted_once

__all__ = [
    "ACCEPT_PREVIEWS",
    "TargetIn",
    "create_target",
    "get_target",
    "resolve_target",
    "set_target_secrets",
    "takes_previews",
]

# A target's config flag: a test target that takes the preview generator's placeholders.
ACCEPT_PREVIEWS = "accept_previews"

# kind -> (config keys that must be set, secret keys that must be set)
REQUIRED: dict[TargetKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    TargetKind.OUTBOX: ((), ()),
    TargetKind.WEBHOOK: ((), ("url", "signing_key")),
    TargetKind.INSTAGRAM: (("ig_user_id",), ("access_token",)),
}


@dataclass(frozen=True)
class TargetIn:
    name: str
    kind: TargetKind
    config: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    accept_previews: bool = False  # a test target: placeholder images may go to it


def _check_url(what: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InputError(
            f"{what} must be an http(s) URL with a host (got a {parts.scheme or 'bare'} value)"
        )


MIN_SIGNING_KEY_CHARS = 16
_API_VERSION = re.compile(r"v\d{1,3}\.\d{1,2}")  # a path segment of every Graph API call


def _check_outbox_folder(folder: str) -> None:
    """An absolute folder that is one, or can be made and written, checked now rather than at
    the first publish."""
    path = Path(folder)
    if not path.is_absolute():
        raise InputError(f"--path {folder!r} must be an absolute folder", field="path")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        raise InputError(f"--path {folder!r}: {existing} is not a folder", field="path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--path {folder!r}: {existing} may not be written", field="path")


def _validate(data: TargetIn) -> None:
    config_keys, secret_keys = REQUIRED[data.kind]
    for key in config_keys:
        if not data.config.get(key):
            raise InputError(f"a {data.kind} target needs --{key.replace('_', '-')}")
    for key in secret_keys:
        if not data.secrets.get(key):
            raise InputError(f"a {data.kind} target needs its secret {key.replace('_', ' ')}")
    if data.accept_previews and data.kind is TargetKind.OUTBOX:
        raise InputError(
            "--accept-previews is for instagram and webhook test targets: the outbox always "
            "takes previews"
        )
    if data.kind is TargetKind.WEBHOOK:
        _check_url("the webhook URL", data.secrets["url"])
        if len(key := data.secrets["signing_key"]) < MIN_SIGNING_KEY_CHARS:
            raise InputError(
                f"a signing key of {len(key)} characters is too short: use at least "
                f"{MIN_SIGNING_KEY_CHARS} random ones (e.g. `openssl rand -hex 32`)",
                field="signing_key",
            )
    if (token := data.secrets.get("access_token")) and any(c.isspace() for c in token):
        raise InputError(
            "the access token holds spaces or line breaks: paste the token alone",
            field="access_token",
        )
    if folder := data.config.get("path"):
        _check_outbox_folder(folder)
    if base_url := data.config.get("base_url"):
        _check_url("--base-url", base_url)
        host = urlsplit(base_url).hostname or ""
        if not base_url.startswith("https://") and host not in ("127.0.0.1", "localhost", "::1"):
            raise InputError(
                f"--base-url {base_url!r} must use https: the token travels with every request"
            )
    if (version := data.config.get("api_version")) is not None and not _API_VERSION.fullmatch(
        version
    ):
        raise InputError(
            f"--api-version {version!r} is not a Graph API version: give one like 'v24.0'",
            field="api_version",
        )
    if data.kind is TargetKind.INSTAGRAM and not str(data.config["ig_user_id"]).isdigit():
        raise InputError(
            f"--ig-user-id {data.config['ig_user_id']!r} must be the numeric Instagram user id"
        )


def get_target(session: Session, name: str) -> PublishTarget:
    target = session.scalars(select(PublishTarget).where(PublishTarget.name == name)).first()
    if target is None:
        raise NotFound(
            f"unknown publish target {name!r}: list them with `ryla target list`", field="name"
        )
    return target


def create_target(
    *, session: Session, settings: Settings, handle: str, data: TargetIn, now: datetime
) -> PublishTarget:
    influencer = get_influencer(session, handle)
    name = check_name("target name", data.name, field="name")
    _validate(data)
    if session.scalars(select(PublishTarget.id).where(PublishTarget.name == name)).first():
        raise InputError(f"publish target {name!r} already exists: choose another name")
    secrets = {k: v for k, v in data.secrets.items() if v}
    config: dict[str, object] = dict(data.config)
    if data.kind is TargetKind.INSTAGRAM:
        config |= token_dates(now)  # a token entered now is fresh: no refresh for 24 h
    if data.accept_previews:
        config[ACCEPT_PREVIEWS] = True
    target = PublishTarget(
        influencer_id=influencer.id,
        name=name,
        kind=data.kind,
        config=config,
        secrets_encrypted=encrypt_secrets(secrets, load_secret_key(settings)) if secrets else None,
    )
    with inserted_once(session, f"publish target {name!r}", "choose another name"):
        session.add(target)
    return target


def set_target_secrets(
    *,
    session: Session,
    settings: Settings,
    name: str,
    secrets: Mapping[str, str],
    now: datetime,
) -> PublishTarget:
    """Replace a target's secrets (e.g. a new token) and clear its re-authorisation flag."""
    target = get_target(session, name)
    _validate(TargetIn(target.name, target.kind, target.config, secrets))
    target.secrets_encrypted = encrypt_secrets(dict(secrets), load_secret_key(settings))
    target.needs_reauth = False
    if target.kind is TargetKind.INSTAGRAM:
        stale = {"token_refreshed_at", "token_expires_at"}
        target.config = {k: v for k, v in target.config.items() if k not in stale}
        target.config |= token_dates(now)
    return target


def takes_previews(target: PublishTarget | None) -> bool:
    """The outbox (a folder a person looks at) and test targets take placeholder images."""
    if target is None or target.kind is TargetKind.OUTBOX:
        return True
    return target.config.get(ACCEPT_PREVIEWS) is True


def resolve_target(session: Session, post: Post) -> PublishTarget | None:
    """The post's own target, else the influencer's first, else None (the default outbox)."""
    if post.publish_target_id is not None:
        return session.get_one(PublishTarget, post.publish_target_id)
    return session.scalars(
        select(PublishTarget)
        .where(PublishTarget.influencer_id == post.influencer_id)
        .order_by(PublishTarget.id)
        .limit(1)
    ).first()
