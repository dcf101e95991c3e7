"""The beat tick: expand calendars, re-send untaken claims, return expired leases, mark missed
slots, claim due work.

Everything here is one short transaction per call and idempotent: two beats, or a tick
repeated after a crash, find nothing left to do twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, update
from sqlalchemy.orm import Session

from models import (
    AttemptStatus,
    Post,
    PostStatus,
    PublishAttempt,
)
from pipeline.planning.expand import expand_due_calendars
from pipeline.settings import Settings
from pipeline.steps.claims import (
    ACTOR,
    Dispatch,
    claim_due,
    expired_filter,
    has_open_attempt,
    locked_ids,
    not_held,
    publish_may_be_out,
    publish_recorded,
    resend_untaken,
)
from pipeline.steps.moves import RUN_PREFIX, move_many, return_moves

__all__ = ["TickReport", "mark_missed", "reconcile_expired", "tick"]


log = logging.getLogger(__name__)


S = PostStatus


@dataclass
class TickReport:
    planned: int = 0
    resent: int = 0  # claims no worker started, sent again under their token
    reconciled: int = 0
    failed: int = 0
    missed: int = 0
    dispatches: list[Dispatch] = field(default_factory=list)


def tick(session: Session, *, settings: Settings, now: datetime) -> TickReport:
    report = TickReport()
    report.planned = expand_due_calendars(
        session, now=now, horizon_days=settings.horizon_days, limit=settings.expand_batch
    )
    resent = resend_untaken(session, settings=settings, now=now)
    report.resent = len(resent)
    report.reconciled, report.failed = reconcile_expired(session, settings=settings, now=now)
    report.missed = mark_missed(session, settings=settings, now=now)
    report.dispatches = resent + claim_due(session, settings=settings, now=now)
    return report


def reconcile_expired(session: Session, *, settings: Settings, now: datetime) -> tuple[int, int]:
    """Posts whose worker vanished go back to their stable state, or fail after max attempts."""
    ids = locked_ids(session, expired_filter(now), Post.lease_expires_at, settings.claim_batch)
    if not ids:
        return 0, 0
    # Only a run a worker started costs a try: a claim nobody took (broker down, a long
    # queue) is simply handed out again, and so is a publish whose media id is recorded
    # (its run died with only the writing down left).
    tried = and_(Post.lease_owner.startswith(RUN_PREFIX), ~publish_recorded())
    out_of_tries = and_(tried, Post.attempts + 1 >= settings.max_attempts)
    cleared = {
        "lease_owner": None,
        "lease_expires_at": None,
        "attempts": Post.attempts + case((tried, 1), else_=0),
    }
    failed = _give_up(session, ids, out_of_tries, cleared, now)
    returned = 0
    for src, dst, condition in return_moves():
        returned += len(
            move_many(
                session,
                ids,
                expected=src,
                to=dst,
                actor=ACTOR,
                where=and_(~out_of_tries, condition),
                detail=_EXPIRED,
                values={**cleared, "last_error": _EXPIRED},
            )
        )
    log.warning("reconciled %d expired leases (%d gave up)", returned, failed)
    return returned, failed


_EXPIRED = "lease expired: the worker stopped answering"


def _give_up(
    session: Session,
    ids: list[int],
    out_of_tries: ColumnElement[bool],
    cleared: dict[str, Any],
    now: datetime,
) -> int:
    """Out of tries: failed, or unknown when a publish call may have reached the target (a
    person decides, never a silent failure); the unknown ones' attempts are closed as such."""
    unknown = move_many(
        session,
        ids,
        expected=S.PUBLISHING,
        to=S.UNKNOWN,
        actor=ACTOR,
        where=and_(out_of_tries, publish_may_be_out()),
        detail=_EXPIRED,
        values={
            **cleared,
            "last_error": f"{_EXPIRED} (attempts used up) after a media_publish that may have "
            "reached the target: look at the account; `ryla post resolve` asks Instagram",
        },
    )
    failed = move_many(
        session,
        ids,
        expected=[S.GENERATING, S.RENDERING, S.PUBLISHING],
        to=S.FAILED,
        actor=ACTOR,
        where=and_(out_of_tries, ~publish_may_be_out()),
        detail=_EXPIRED,
        values={**cleared, "last_error": f"{_EXPIRED} (attempts used up)"},
    )
    if unknown:
        session.execute(
            update(PublishAttempt)
            .where(
                PublishAttempt.post_id.in_(unknown),
                PublishAttempt.status == AttemptStatus.STARTED,
            )
            .values(status=AttemptStatus.UNKNOWN, finished_at=now, error=_EXPIRED)
        )
    return len(unknown) + len(failed)


def mark_missed(session: Session, *, settings: Settings, now: datetime) -> int:
    """A slot that passed while nothing ran is marked missed, never published as a stale burst."""
    late = now - timedelta(seconds=settings.grace_seconds)
    waiting = [S.PLANNED, S.READY, S.APPROVED]
    ids = locked_ids(
        session,
        and_(Post.status.in_(waiting), Post.publish_at < late, not_held(), ~has_open_attempt()),
        Post.publish_at,
        settings.claim_batch,
    )
    detail = f"slot passed more than {settings.grace_seconds} s ago while the system was down"
    values = {"last_error": detail}
    return len(
        move_many(
            session, ids, expected=waiting, to=S.MISSED, actor=ACTOR, detail=detail, values=values
        )
    )
