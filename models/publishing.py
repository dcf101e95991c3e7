"""Where posts go (publish targets, secrets encrypted) and every attempt to send one there.

An attempt row is committed before any external call: it is the key to exactly-once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, enum_column, utcnow


class TargetKind(StrEnum):
    OUTBOX = "outbox"
    WEBHOOK = "webhook"
    INSTAGRAM = "instagram"


class AttemptStatus(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


class PublishTarget(Base):
    __tablename__ = "publish_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    influencer_id: Mapped[int | None] = mapped_column(
        ForeignKey("influencers.id", ondelete="CASCADE"), default=None, index=True
    )
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[TargetKind] = mapped_column(enum_column(TargetKind))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Fernet token of a JSON object (tokens, signing keys); never plain text.
    secrets_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    needs_reauth: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublishAttempt(Base):
    __tablename__ = "publish_attempts"
    # At most one open attempt per post: two runs can never each start their own.
    __table_args__ = (
        Index(
            "uq_publish_attempts_open_post",
            "post_id",
            unique=True,
            postgresql_where=text("status = 'started'"),
            sqlite_where=text("status = 'started'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4, the idempotency key
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    target_id: Mapped[int | None] = mapped_column(
        ForeignKey("publish_targets.id", ondelete="SET NULL"), default=None
    )
    target_kind: Mapped[TargetKind] = mapped_column(enum_column(TargetKind))
    status: Mapped[AttemptStatus] = mapped_column(
        enum_column(AttemptStatus), default=AttemptStatus.STARTED
    )
    container_id: Mapped[str | None] = mapped_column(String(200), default=None)
    # The container a media_publish was sent for, before the call: if the answer is lost,
    # the container (not a new one) must be asked whether the post went out.
    publish_requested: Mapped[str | None] = mapped_column(String(200), default=None)
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
