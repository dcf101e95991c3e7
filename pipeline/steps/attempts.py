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

__all__ = [
    "RESUME_KEYS",
    "attempt_checkpoint",
    "attempt_in_doubt",
    "finish_attempt",
    "known_media_ids",
    "open_attempt",
]


def open_attempt(session: Session, post_id: int) -> PublishAttempt | None:
    """The post's unfinished publish attempt (at most one: a partial unique index)."""
    return session.scalars(
        select(PublishAttempt).where(
            PublishAttempt.post_id == post_id, PublishAttempt.status == AttemptStatus.STARTED
        )
    ).first()


def attempt_in_doubt(session: Session, post_id: int) -> PublishAttempt | None:
    """The post's attempt whose media_publish may have reached the target, if any.

    Open (a run will ask the target), unknown (a person decides), or failed by code that
    predates the rule that such a post never fails: each means the post may be live.
    """
    return session.scalars(
        select(PublishAttempt)
        .where(
            PublishAttempt.post_id == post_id,
            PublishAttempt.publish_requested.is_not(None),
            PublishAttempt.status.in_(
                [AttemptStatus.STARTED, AttemptStatus.UNKNOWN, AttemptStatus.FAILED]
            ),
        )
        .order_by(PublishAttempt.started_at.desc())
    ).first()


def known_media_ids(session: Session, post: Post, *, since: datetime) -> frozenset[str]:
    """Media ids the influencer's other posts hold, from a day before ``since`` on.

    After a lost answer these can never be this post's media, whatever their caption.
    """
    recent = since - timedelta(days=1)
    held = select(Post.external_id).where(
        Post.influencer_id == post.influencer_id,
        Post.id != post.id,
        Post.external_id.is_not(None),
        Post.published_at >= recent,
    )
    # An answer checkpointed by another post's attempt counts before that post is recorded.
    checkpointed = (
        select(PublishAttempt.external_id)
        .join(Post, Post.id == PublishAttempt.post_id)
        .where(
            Post.influencer_id == post.influencer_id,
            PublishAttempt.post_id != post.id,
            PublishAttempt.external_id.is_not(None),
            PublishAttempt.started_at >= recent,
        )
    )
    return frozenset(str(i) for i in session.scalars(held.union(checkpointed)) if i)


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
