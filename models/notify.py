"""Telling people: notification channels, the alerts the scan finds, and the notification outbox.

An alert is one thing a person should know (a post failed, a target needs a token); a
notification is one message to one channel, committed before it is sent (exactly once).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, enum_column, utcnow


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"  # Slack, Discord, n8n or any receiver: a signed JSON POST
    EMAIL = "email"  # SMTP


class NotificationStatus(StrEnum):
    PENDING = "pending"  # committed, not sent yet (or sent and refused: will retry)
    SENDING = "sending"  # a worker holds it under a lease
    SENT = "sent"
    FAILED = "failed"  # refused for good, or out of tries
    UNKNOWN = "unknown"  # the send may have arrived (its answer was lost): never repeated


class NotifyChannel(Base):
    __tablename__ = "notify_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[ChannelKind] = mapped_column(enum_column(ChannelKind))
    # What is not secret: the payload format and the receiver's host, or SMTP host/port/from/to.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Fernet token of a JSON object (webhook URL and signing key, SMTP password).
    secrets_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    # The causes this channel hears about (every cause when empty).
    causes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # At most one message per cause per window; later alerts wait for the next window.
    window_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    immediate: Mapped[bool] = mapped_column(Boolean, default=True)
    # A daily digest at this local "HH:MM" in ``timezone`` (None: no digest).
    digest_at: Mapped[str | None] = mapped_column(String(5), default=None)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Alerts up to this id existed before the channel: it is not told about them.
    after_alert_id: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    """One thing a person should know. Events (a post failed) are unique by ``key``;
    conditions (a target needs a token) stay open until the scan finds them gone."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_cause_resolved_at", "cause", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cause: Mapped[str] = mapped_column(String(40))
    ref: Mapped[str] = mapped_column(String(80))  # what it is about: "post:12", "target:3"
    key: Mapped[str] = mapped_column(String(200), unique=True)
    summary: Mapped[str] = mapped_column(Text)  # one line: what happened
    hint: Mapped[str] = mapped_column(Text, default="")  # one line: what to do
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Notification(Base):
    """One message to one channel: the outbox row committed before the send."""

    __tablename__ = "notifications"
    # The rule "one message per cause per window" holds in the database, not only in code.
    __table_args__ = (
        UniqueConstraint("channel_id", "cause", "window_start"),
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4: the idempotency key
    channel_id: Mapped[int] = mapped_column(ForeignKey("notify_channels.id", ondelete="CASCADE"))
    cause: Mapped[str] = mapped_column(String(40))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    # The alerts this message tells of: ids in (first_alert_id - 1, last_alert_id].
    first_alert_id: Mapped[int | None] = mapped_column(Integer, default=None)
    last_alert_id: Mapped[int | None] = mapped_column(Integer, default=None)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    status: Mapped[NotificationStatus] = mapped_column(
        enum_column(NotificationStatus), default=NotificationStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Committed right before the call that may deliver: a run that dies after it may have
    # delivered, so its message is never sent again automatically.
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScanCursor(Base):
    """How far a periodic scan has read a growing table (e.g. post_events)."""

    __tablename__ = "scan_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
