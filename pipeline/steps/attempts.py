"""Publish attempts: committed before any external call, checkpointed, finished once.

At most one attempt per post is open (a partial unique index); its recorded progress is
what an interrupted publish resumes from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import (
    AttemptStatus,
    Post,
    PublishAttempt,
)
from pipeline.db import session_scope
from pipeline.errors import (
    LeaseLost,
)
from pipeline.publishers.base import Checkpoint, PublishResult
from pipeline.settings import Settings

__all__ = ["RESUME_KEYS", "attempt_checkpoint", "finish_attempt", "open_attempt"]


def open_attempt(session: Session, post_id: int) -> PublishAttempt | None:
    """The post's unfinished publish attempt (at most one: a partial unique index)."""
    return session.scalars(
        select(PublishAttempt).where(
            PublishAttempt.post_id == post_id, PublishAttempt.status == AttemptStatus.STARTED
        )
    ).first()


# What a publisher may checkpoint, and so what an interrupted attempt resumes from.
RESUME_KEYS = ("container_id", "external_id", "publish_requested")


def attempt_checkpoint(
    factory: sessionmaker[Session],
    attempt_id: str,
    *,
    post_id: int,
    run_id: str,
    settings: Settings,
    clock: Callable[[], datetime],
) -> Checkpoint:
    """Durably record a publisher's progress before its next external call.

    Each checkpoint also renews this run's lease, and raises LeaseLost when another run holds
    it: a run that was presumed dead must not make the next, irreversible call.
    """

    def checkpoint(key: str, value: str) -> None:
        if key not in RESUME_KEYS:
            raise ValueError(f"cannot checkpoint {key!r}: one of {', '.join(RESUME_KEYS)}")
        with session_scope(factory) as session:
            renewed = session.execute(
                update(Post)
                .where(Post.id == post_id, Post.lease_owner == run_id)
                .values(lease_expires_at=clock() + timedelta(seconds=settings.lease_seconds))
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost(post_id)
            session.execute(
                update(PublishAttempt)
                .where(PublishAttempt.id == attempt_id)
                .values({key: value or None})  # "" clears a key
            )

    return checkpoint


def finish_attempt(
    session: Session,
    attempt_id: str,
    *,
    status: AttemptStatus,
    now: datetime,
    result: PublishResult | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, object] = {"status": status, "finished_at": now, "error": error}
    if result is not None:
        values["external_id"] = result.external_id
    session.execute(
        update(PublishAttempt)
        .where(PublishAttempt.id == attempt_id, PublishAttempt.status == AttemptStatus.STARTED)
        .values(values)
    )
