"""The beat tick: expand calendars, return expired leases, mark missed slots, claim due work.

Everything here is one short transaction per call and idempotent: two beats, or a tick
repeated after a crash, find nothing left to do twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, or_, select, true
from sqlalchemy.orm import Session

from models import (
    AttemptStatus,
    Character,
    ContentCalendar,
    Influencer,
    Post,
    PostStatus,
    PublishAttempt,
)
from pipeline.dispatch import (
    Dispatch,
    Step,
    claim,
    due_filter,
    expired_filter,
    locked_ids,
    move_many,
    return_moves,
)
from pipeline.generators.sizes import native_size
from pipeline.schedule import expand_due_calendars
from pipeline.settings import Settings

__all__ = ["TickReport", "claim_due", "mark_missed", "not_held", "reconcile_expired", "tick"]

log = logging.getLogger(__name__)
S = PostStatus
ACTOR = "beat"


@dataclass
class TickReport:
    planned: int = 0
    reconciled: int = 0
    failed: int = 0
    missed: int = 0
    dispatches: list[Dispatch] = field(default_factory=list)


def tick(session: Session, *, settings: Settings, now: datetime) -> TickReport:
    report = TickReport()
    report.planned = expand_due_calendars(
        session, now=now, horizon_days=settings.horizon_days, limit=settings.expand_batch
    )
    report.reconciled, report.failed = reconcile_expired(session, settings=settings, now=now)
    report.missed = mark_missed(session, settings=settings, now=now)
    report.dispatches = claim_due(session, settings=settings, now=now)
    return report


def reconcile_expired(session: Session, *, settings: Settings, now: datetime) -> tuple[int, int]:
    """Posts whose worker vanished go back to their stable state, or fail after max attempts."""
    ids = locked_ids(session, expired_filter(now), Post.lease_expires_at, settings.claim_batch)
    if not ids:
        return 0, 0
    # Only a run a worker started costs a try: a claim nobody took (broker down, a long
    # queue) is simply handed out again.
    tried = Post.lease_owner.like("run-%")
    out_of_tries = and_(tried, Post.attempts + 1 >= settings.max_attempts)
    reason = "lease expired: the worker stopped answering"
    cleared = {
        "lease_owner": None,
        "lease_expires_at": None,
        "attempts": Post.attempts + case((tried, 1), else_=0),
    }
    gave_up = {**cleared, "last_error": f"{reason} (attempts used up)"}
    # A publish call may have reached the target: a person decides, never a silent failure.
    unknown = move_many(
        session,
        ids,
        expected=S.PUBLISHING,
        to=S.UNKNOWN,
        actor=ACTOR,
        where=and_(out_of_tries, publish_may_be_out()),
        detail=reason,
        values=gave_up,
    )
    failed = move_many(
        session,
        ids,
        expected=[S.GENERATING, S.RENDERING, S.PUBLISHING],
        to=S.FAILED,
        actor=ACTOR,
        where=and_(out_of_tries, ~publish_may_be_out()),
        detail=reason,
        values=gave_up,
    )
    failed += unknown
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
                detail=reason,
                values={**cleared, "last_error": reason},
            )
        )
    log.warning("reconciled %d expired leases (%d failed for good)", returned, len(failed))
    return returned, len(failed)


def publish_may_be_out() -> ColumnElement[bool]:
    """Posts whose open publish attempt recorded a publish call that may have gone through."""
    return Post.id.in_(
        select(PublishAttempt.post_id).where(
            PublishAttempt.status == AttemptStatus.STARTED,
            PublishAttempt.publish_requested.is_not(None),
        )
    )


def open_attempt() -> ColumnElement[bool]:
    """Posts with a publish attempt in flight: they resume (ask the target), never go stale."""
    return Post.id.in_(
        select(PublishAttempt.post_id).where(PublishAttempt.status == AttemptStatus.STARTED)
    )


def not_held() -> ColumnElement[bool]:
    """Posts of an active influencer and calendar; a paused one's posts stay where they are.

    Written as NOT IN the paused few, which stays cheap however many accounts are active.
    """
    paused_influencers = select(Influencer.id).where(Influencer.active.is_(False))
    paused_calendars = select(ContentCalendar.id).where(ContentCalendar.active.is_(False))
    return and_(
        Post.influencer_id.not_in(paused_influencers),
        or_(Post.calendar_id.is_(None), Post.calendar_id.not_in(paused_calendars)),
    )


def mark_missed(session: Session, *, settings: Settings, now: datetime) -> int:
    """A slot that passed while nothing ran is marked missed, never published as a stale burst."""
    late = now - timedelta(seconds=settings.grace_seconds)
    waiting = [S.PLANNED, S.READY, S.APPROVED]
    ids = locked_ids(
        session,
        and_(Post.status.in_(waiting), Post.publish_at < late, not_held(), ~open_attempt()),
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


def _with_batch_keys(session: Session, claimed: list[Dispatch]) -> list[Dispatch]:
    """Label generate dispatches by what one GPU call can share: image size and LoRA."""
    if not claimed:
        return claimed
    rows = session.execute(
        select(Post.id, Post.formats, Character.lora_path, Character.lora_scale)
        .join(Character, Character.id == Post.character_id)
        .where(Post.id.in_([d.post_id for d in claimed]))
    )
    keys = {}
    for post_id, formats, lora, scale in rows:
        width, height = native_size(formats)
        keys[post_id] = f"{width}x{height}|{lora or '-'}|{scale:g}"
    return [replace(d, batch_key=keys.get(d.post_id, "")) for d in claimed]


def claim_due(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    post_id: int | None = None,
    actor: str = ACTOR,
) -> list[Dispatch]:
    """Claim every step that is due now (or only for ``post_id``), oldest first."""
    scope = and_(not_held(), Post.id == post_id if post_id is not None else true())
    claims = _Claims(session, settings, now, actor)
    return [
        *_with_batch_keys(session, claims.generate(scope)),
        *claims.render(scope),
        *claims.publish(scope),
    ]


@dataclass
class _Claims:
    session: Session
    settings: Settings
    now: datetime
    actor: str

    def _claim(
        self, step: Step, due: ColumnElement[bool], order: Any, expected: Any, etas: bool = False
    ) -> list[Dispatch]:
        ids = locked_ids(self.session, due, order, self.settings.claim_batch)
        when = (
            dict(
                self.session.execute(select(Post.id, Post.publish_at).where(Post.id.in_(ids))).all()
            )
            if etas
            else None
        )
        return claim(
            self.session,
            ids,
            step=step,
            expected=expected,
            now=self.now,
            lease_seconds=self.settings.lease_seconds,
            actor=self.actor,
            etas=when,
        )

    def _fresh(self) -> ColumnElement[bool]:
        # Past the grace window a slot is missed (mark_missed), never generated or published
        # late: this also covers claims made outside the tick (a follow-up, an approval).
        return Post.publish_at >= self.now - timedelta(seconds=self.settings.grace_seconds)

    def generate(self, scope: ColumnElement[bool]) -> list[Dispatch]:
        due = and_(
            Post.status == S.PLANNED,
            Post.generate_at <= self.now,
            due_filter(self.now),
            self._fresh(),
            scope,
        )
        return self._claim(Step.GENERATE, due, Post.generate_at, S.PLANNED)

    def render(self, scope: ColumnElement[bool]) -> list[Dispatch]:
        due = and_(Post.status == S.GENERATED, due_filter(self.now), scope)
        return self._claim(Step.RENDER, due, Post.generate_at, S.GENERATED)

    def publish(self, scope: ColumnElement[bool]) -> list[Dispatch]:
        """Up to ``publish_ahead_seconds`` early, held by an ETA; a publish in flight resumes
        however late it is."""
        publishable = [S.READY, S.APPROVED]
        horizon = self.now + timedelta(seconds=self.settings.publish_ahead_seconds)
        due = and_(
            Post.status.in_(publishable),
            Post.publish_at <= horizon,
            due_filter(self.now),
            or_(self._fresh(), open_attempt()),
            scope,
        )
        return self._claim(Step.PUBLISH, due, Post.publish_at, publishable, etas=True)
