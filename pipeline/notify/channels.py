"""Notification channels: a signed webhook (Slack, Discord, n8n …) or e-mail over SMTP.

Every field is checked before anything is written. Webhook URLs (their path is the key) and
SMTP passwords are encrypted at rest like publish-target secrets and never appear in messages.
"""

from __future__ import annotations

import re
import secrets as random_secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models import Alert, ChannelKind, NotifyChannel
from pipeline.crypto import decrypt_secrets, encrypt_secrets
from pipeline.errors import InputError, NotFound, SecretsError
from pipeline.notify.causes import CAUSES
from pipeline.planning.times import zone
from pipeline.settings import Settings, load_secret_key

__all__ = [
    "FORMATS",
    "SECURITY",
    "ChannelIn",
    "channel_secrets",
    "create_channel",
    "get_channel",
    "remove_channel",
    "webhook_format",
]

FORMATS = ("auto", "slack", "discord", "json")  # json: n8n, Make, Zapier, your own receiver
SECURITY = ("starttls", "ssl", "none")
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$|^[^@\s,;<>]+@localhost$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MIN_WINDOW, MAX_WINDOW = 10, 7 * 86_400


@dataclass(frozen=True)
class ChannelIn:
    name: str
    kind: ChannelKind
    # webhook: format; email: to (list), sender, smtp_host, smtp_port, security, username
    config: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)  # url, signing_key / password
    causes: Sequence[str] = ()
    window_seconds: int = 3600
    immediate: bool = True
    digest_at: str | None = None
    timezone: str = "UTC"


def webhook_format(config: Mapping[str, Any], url_host: str) -> str:
    """The payload shape: the configured one, or guessed from the receiver's host."""
    chosen = str(config.get("format") or "auto")
    if chosen != "auto":
        return chosen
    if url_host.endswith("slack.com"):
        return "slack"
    if url_host.endswith(("discord.com", "discordapp.com")):
        return "discord"
    return "json"


def _check_common(data: ChannelIn) -> None:
    if not data.name.strip() or len(data.name) > 100:
        raise InputError(f"channel name {data.name[:40]!r} must be 1-100 characters")
    unknown = [c for c in data.causes if c not in CAUSES]
    if unknown:
        raise InputError(f"unknown cause {unknown[0]!r}: choose from {', '.join(CAUSES)}")
    if not MIN_WINDOW <= data.window_seconds <= MAX_WINDOW:
        raise InputError(
            f"window of {data.window_seconds} s is out of range: give 1 minute to 7 days"
        )
    if data.digest_at is not None and not _HHMM.match(data.digest_at):
        raise InputError(f"--digest {data.digest_at!r} must be a local time HH:MM, e.g. 08:30")
    if not data.immediate and data.digest_at is None:
        raise InputError("--digest-only needs --digest HH:MM: otherwise nothing is ever sent")
    zone(data.timezone)  # raises a ScheduleError naming the zone


def _check_webhook(data: ChannelIn) -> None:
    url = data.secrets.get("url", "")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InputError(
            f"the webhook URL must be an http(s) URL with a host (got a {parts.scheme or 'bare'} "
            "value); set RYLA_NOTIFY_WEBHOOK_URL or paste it at the prompt"
        )
    if data.config.get("format", "auto") not in FORMATS:
        raise InputError(
            f"--format {data.config.get('format')!r} is unknown: choose {', '.join(FORMATS)}"
        )
    key = data.secrets.get("signing_key", "")
    if key and len(key) < 16:
        raise InputError("the signing key must be at least 16 characters (or leave it empty)")


def _check_email(data: ChannelIn) -> None:
    config = data.config
    recipients = list(config.get("to") or [])
    bad = [r for r in recipients if not _EMAIL.match(r)]
    if not recipients or bad:
        raise InputError(
            f"--email {bad[0] if bad else ''!r} is not an e-mail address: give name@domain"
        )
    sender = str(config.get("sender") or "")
    if not _EMAIL.match(sender):
        raise InputError(f"--from {sender!r} is not an e-mail address: give name@domain")
    if not config.get("smtp_host"):
        raise InputError("an e-mail channel needs --smtp-host")
    port = config.get("smtp_port")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise InputError(f"--smtp-port {port!r} must be 1-65535 (587 for STARTTLS, 465 for SSL)")
    if config.get("security", "starttls") not in SECURITY:
        raise InputError(f"--security must be one of {', '.join(SECURITY)}")
    if config.get("username") and not data.secrets.get("password"):
        raise InputError(
            "--smtp-user needs a password: set RYLA_NOTIFY_SMTP_PASSWORD or type it at the prompt"
        )


def create_channel(
    *, session: Session, settings: Settings, data: ChannelIn, now: datetime
) -> NotifyChannel:
    """Check everything, then add the channel; it hears only of alerts from now on."""
    _check_common(data)
    (_check_webhook if data.kind is ChannelKind.WEBHOOK else _check_email)(data)
    taken = select(NotifyChannel.id).where(NotifyChannel.name == data.name)
    if session.scalars(taken).first() is not None:
        raise InputError(f"channel {data.name!r} already exists: choose another name")
    stored = {k: v for k, v in data.secrets.items() if v}
    config = dict(data.config)
    if data.kind is ChannelKind.WEBHOOK:
        stored.setdefault("signing_key", random_secrets.token_urlsafe(32))
        config["host"] = urlsplit(stored["url"]).hostname or ""  # for lists: never the path
    channel = NotifyChannel(
        name=data.name,
        kind=data.kind,
        config=config,
        secrets_encrypted=encrypt_secrets(stored, load_secret_key(settings)) if stored else None,
        causes=list(data.causes),
        window_seconds=data.window_seconds,
        immediate=data.immediate,
        digest_at=data.digest_at,
        timezone=data.timezone,
        after_alert_id=session.scalar(select(func.coalesce(func.max(Alert.id), 0))) or 0,
        created_at=now,
    )
    session.add(channel)
    session.flush()
    return channel


def get_channel(session: Session, name: str) -> NotifyChannel:
    found = session.scalars(select(NotifyChannel).where(NotifyChannel.name == name)).first()
    if found is None:
        raise NotFound(f"unknown channel {name!r}: list them with `ryla notify list`", field="name")
    return found


def remove_channel(*, session: Session, name: str) -> None:
    """Remove a channel and its messages (sent or not)."""
    channel = get_channel(session, name)
    session.execute(delete(NotifyChannel).where(NotifyChannel.id == channel.id))


def channel_secrets(channel: NotifyChannel, settings: Settings) -> dict[str, Any]:
    if not channel.secrets_encrypted:
        return {}
    try:
        return decrypt_secrets(channel.secrets_encrypted, load_secret_key(settings))
    except SecretsError:
        raise SecretsError(
            f"cannot open channel {channel.name!r}'s secrets: RYLA_SECRET_KEY changed since it "
            "was added; remove it and add it again"
        ) from None
