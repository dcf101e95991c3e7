"""One message, sent exactly once: the outbox row is committed before the send, a worker claims
it under a lease, and commits "send started" right before the call that may deliver.

A send that surely did not arrive (no connection, refused) is tried again with back-off; one
whose answer was lost, or whose worker died after "send started", ends ``unknown`` and is never
repeated: a person may be told twice by nothing we do.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import ChannelKind, Notification, NotificationStatus, NotifyChannel
from pipeline.db import session_scope
from pipeline.errors import DeliveryUnknown, NotDelivered, SecretsError
from pipeline.notify.channels import channel_secrets
from pipeline.notify.email import send_email
from pipeline.notify.message import Checkpoint, Outgoing, Sender
from pipeline.notify.webhook import send_webhook
from pipeline.settings import Settings

__all__ = [
    "Delivery",
    "deliver",
    "due_notifications",
    "make_sender",
    "reconcile_sends",
]

log = logging.getLogger(__name__)
N = NotificationStatus
REDISPATCH = timedelta(minutes=2)  # a pending message whose broker message got lost
DUE_BATCH = 100


@dataclass(frozen=True)
class Delivery:
    id: str
    status: NotificationStatus | None  # None: not claimed here (a duplicate, or not due)
    detail: str


class _ClaimGone(Exception):
    """The lease moved on before the send started: nothing was sent."""


def _claim(session: Session, notification_id: str, run_id: str, now: datetime, lease: int) -> bool:
    claimed = session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.status == N.PENDING)
        .where((Notification.next_attempt_at.is_(None)) | (Notification.next_attempt_at <= now))
        .values(
            status=N.SENDING,
            lease_owner=run_id,
            lease_expires_at=now + timedelta(seconds=lease),
            attempts=Notification.attempts + 1,
        )
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _outgoing(session: Session, notification_id: str, settings: Settings) -> Outgoing:
    row = session.get_one(Notification, notification_id)
    channel = session.get_one(NotifyChannel, row.channel_id)
    return Outgoing(
        row.id,
        row.cause,
        row.title,
        row.body,
        list(row.items),
        row.window_start,
        row.created_at,
        channel.name,
        channel.kind,
        dict(channel.config),
        channel_secrets(channel, settings),
    )


def _settle(
    factory: sessionmaker[Session], notification_id: str, run_id: str, values: dict[str, Any]
) -> None:
    """Record how the send ended; a late answer may still turn ``unknown`` into ``sent``."""
    with session_scope(factory) as session:
        session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.lease_owner == run_id)
            .where(Notification.status.in_([N.SENDING, N.UNKNOWN]))
            .values(lease_owner=None, lease_expires_at=None, **values)
        )


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600.0, 30.0 * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2))


def deliver(
    factory: sessionmaker[Session],
    notification_id: str,
    *,
    settings: Settings,
    send: Sender,
    clock: Callable[[], datetime],
    retry: bool = True,
) -> Delivery:
    """Claim, checkpoint, send, record: a duplicate call finds nothing to claim.

    ``retry=False`` (a person's test) ends a send that may be tried again as failed instead.
    """
    run_id = f"send-{uuid.uuid4().hex}"
    with session_scope(factory) as session:
        if not _claim(session, notification_id, run_id, clock(), settings.notify_lease_seconds):
            return Delivery(notification_id, None, "already taken, sent, or not due yet")
        attempts = session.get_one(Notification, notification_id).attempts
        try:
            message = _outgoing(session, notification_id, settings)
        except SecretsError as exc:
            message = None
            problem = str(exc)
    if message is None:
        _settle(factory, notification_id, run_id, {"status": N.FAILED, "error": problem})
        return Delivery(notification_id, N.FAILED, problem)

    def checkpoint() -> None:
        with session_scope(factory) as session:
            started = session.execute(
                update(Notification)
                .where(Notification.id == notification_id, Notification.lease_owner == run_id)
                .where(Notification.status == N.SENDING)
                .values(send_started_at=clock())
            )
            if not started.rowcount:  # type: ignore[attr-defined]
                raise _ClaimGone(notification_id)

    tries = attempts if retry else settings.notify_max_attempts
    return _send(factory, message, run_id, tries, settings, send, checkpoint, clock)


def _send(
    factory: sessionmaker[Session],
    message: Outgoing,
    run_id: str,
    attempts: int,
    settings: Settings,
    send: Sender,
    checkpoint: Checkpoint,
    clock: Callable[[], datetime],
) -> Delivery:
    values: dict[str, Any]
    try:
        detail = send(message, checkpoint)
    except _ClaimGone:
        return Delivery(message.id, None, "the claim moved on before the send; nothing sent")
    except NotDelivered as exc:
        detail = str(exc)
        if exc.retry and attempts < settings.notify_max_attempts:
            wait = clock() + _backoff(attempts)
            values = {"status": N.PENDING, "next_attempt_at": wait, "send_started_at": None}
            values["dispatched_at"] = None  # the first scan after the wait sends it again
        else:
            values = {"status": N.FAILED}
        values["error"] = detail
    except DeliveryUnknown as exc:
        detail = str(exc)
        values = {"status": N.UNKNOWN, "error": detail}
    except Exception as exc:  # a bug after the call began: it may have gone out
        detail = f"{type(exc).__name__}: {exc}"
        values = {"status": N.UNKNOWN, "error": detail}
    else:
        values = {"status": N.SENT, "sent_at": clock(), "error": None}
    _settle(factory, message.id, run_id, values)
    level = logging.INFO if values["status"] is N.SENT else logging.WARNING
    log.log(
        level,
        "notification %s to %s (%s): %s, %s",
        message.id[:8],
        message.channel,
        message.cause,
        values["status"],
        detail,
        extra={"notification": message.id, "outcome": str(values["status"])},
    )
    return Delivery(message.id, values["status"], detail)


def reconcile_sends(session: Session, *, now: datetime) -> tuple[int, int]:
    """Sends whose worker died: not started → pending again; started → ``unknown``."""
    expired = (Notification.status == N.SENDING) & (Notification.lease_expires_at < now)
    returned = session.execute(
        update(Notification)
        .where(expired, Notification.send_started_at.is_(None))
        .values(status=N.PENDING, lease_owner=None, lease_expires_at=None, dispatched_at=None)
    )
    unknown = session.execute(
        update(Notification)
        .where(expired, Notification.send_started_at.is_not(None))
        # The owner stays: if that run still answers late, its answer is recorded.
        .values(
            status=N.UNKNOWN,
            error="the worker stopped during the send: it may have arrived, so it is not "
            "sent again",
        )
    )
    return int(returned.rowcount or 0), int(unknown.rowcount or 0)  # type: ignore[attr-defined]


def due_notifications(session: Session, *, now: datetime, limit: int = DUE_BATCH) -> list[str]:
    """Pending messages to hand to the io queue now; each is marked dispatched."""
    ids = list(
        session.scalars(
            select(Notification.id)
            .where(Notification.status == N.PENDING)
            .where((Notification.next_attempt_at.is_(None)) | (Notification.next_attempt_at <= now))
            .where(
                (Notification.dispatched_at.is_(None))
                | (Notification.dispatched_at < now - REDISPATCH)
            )
            .order_by(Notification.created_at)
            .limit(limit)
        )
    )
    if ids:
        session.execute(
            update(Notification).where(Notification.id.in_(ids)).values(dispatched_at=now)
        )
    return ids


def make_sender(client: httpx.Client, *, smtp_timeout: float = 30.0) -> Sender:
    """The sender for each channel kind, sharing one HTTP client."""

    def send(message: Outgoing, checkpoint: Checkpoint) -> str:
        if message.kind is ChannelKind.WEBHOOK:
            return send_webhook(message, checkpoint, client=client)
        return send_email(message, checkpoint, timeout=smtp_timeout)

    return send
