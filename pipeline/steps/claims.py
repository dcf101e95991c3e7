"""Claims: posts that are due move into a step's in-progress state under a fresh lease token.

``Dispatch`` says what the caller must send to the broker once the claim has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, or_, select, true, update
from sqlalchemy.orm import Session

from models import (
    IN_PROGRESS,
    AttemptStatus,
    Character,
    ContentCalendar,
    Influencer,
    Post,
    PostStatus,
    PublishAttempt,
    UTCDateTime,
)
from pipeline.errors import RenderError
from pipeline.generators.sizes import native_size
from pipeline.settings import Settings
from pipeline.steps.moves import RUN_PREFIX, STEP_STATUS, Step, move_many, new_token

__all__ = [
    "ACTOR",
    "Dispatch",
    "batch_dispatches",
    "claim",
    "claim_due",
    "due_filter",
    "expired_filter",
    "has_open_attempt",
    "locked_ids",
    "new_token",
    "not_held",
    "publish_may_be_out",
    "publish_recorded",
    "resend_untaken",
]


log = logging.getLogger(__name__)
S = PostStatus
ACTOR = "beat"


@dataclass(frozen=True)
class Dispatch:
    """A claimed post and the message that must go to the broker for it."""

    step: Step
    post_id: int
    token: str
    eta: datetime | None = None
    # Generate only: posts with the same key (size, LoRA) may share one generator call.
    batch_key: str = ""


def batch_dispatches(dispatches: Sequence[Dispatch], size: int) -> list[list[Dispatch]]:
    """Group generate dispatches claimed together with one batch key, ``size`` at most;
    every other dispatch travels alone."""
    groups: dict[tuple[str, str], list[Dispatch]] = {}
    out: list[list[Dispatch]] = []
    for d in dispatches:
        if d.step is not Step.GENERATE:
            out.append([d])
            continue
        group = groups.setdefault((d.token, d.batch_key), [])
        group.append(d)
        if len(group) == size:
            out.append(groups.pop((d.token, d.batch_key)))
    return out + list(groups.values())


def claim(
    session: Session,
    ids: Sequence[int],
    *,
    step: Step,
    expected: PostStatus | Sequence[PostStatus],
    now: datetime,
    grace_seconds: int,
    actor: str,
    etas: dict[int, datetime] | None = None,
) -> list[Dispatch]:
    """Move posts into ``step``'s in-progress state under a fresh lease token.

    ``etas`` (publish only) holds messages until each post's time. Until a worker starts it, a
    claim lives ``grace_seconds`` past its own time (its ETA, else now): a dead worker's or a
    lost message's claim is back in play about a tick after that (``resend_untaken``), never a
    long lease later, and never measured from another post of the batch.
    """
    token = new_token()
    grace = timedelta(seconds=grace_seconds)
    ahead = {pid: eta for pid, eta in (etas or {}).items() if eta > now}
    expires: Any = now + grace
    if ahead:
        whens = {pid: literal(eta + grace, UTCDateTime()) for pid, eta in ahead.items()}
        expires = case(whens, value=Post.id, else_=literal(now + grace, UTCDateTime()))
    values: dict[str, Any] = {
        "lease_owner": token,
        "lease_expires_at": expires,
        "next_attempt_at": None,
    }
    if step is Step.GENERATE:
        values["generation"] = Post.generation + 1
    moved = move_many(
        session, ids, expected=expected, to=STEP_STATUS[step], actor=actor, values=values
    )
    return [Dispatch(step, pid, token, ahead.get(pid)) for pid in moved]


def resend_untaken(session: Session, *, settings: Settings, now: datetime) -> list[Dispatch]:
    """Claims no worker has started, past their grace: sent again under the same token.

    A worker that died holding the message, or a broker that lost it, leaves such a claim. The
    same token lets whichever copy arrives first run and every other copy find nothing, so a
    long queue is never starved by ever-new tokens; nothing moves, so no try is spent. Claims
    that should no longer run (a paused account, a slot past its grace window) are left for
    ``tick.reconcile_expired`` to return.
    """
    late = now - timedelta(seconds=settings.grace_seconds)
    untaken = and_(
        Post.status.in_(list(IN_PROGRESS)),
        Post.lease_expires_at < now,
        Post.lease_owner.is_not(None),
        ~Post.lease_owner.startswith(RUN_PREFIX),
        not_held(),
        or_(Post.status == S.RENDERING, Post.publish_at >= late, has_open_attempt()),
    )
    ids = locked_ids(session, untaken, Post.lease_expires_at, settings.claim_batch)
    if not ids:
        return []
    grace = timedelta(seconds=settings.claim_grace_seconds)
    session.execute(
        update(Post)
        .where(Post.id.in_(ids))
        .values(lease_expires_at=now + grace)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(select(Post.id, Post.status, Post.lease_owner).where(Post.id.in_(ids)))
    steps = {status: step for step, status in STEP_STATUS.items()}
    resent = [Dispatch(steps[status], pid, str(token)) for pid, status, token in rows]
    log.warning("re-sent %d claim(s) no worker started in time", len(resent))
    return _with_batch_keys(session, resent)


def due_filter(now: datetime) -> ColumnElement[bool]:
    return or_(Post.next_attempt_at.is_(None), Post.next_attempt_at <= now)


def expired_filter(now: datetime) -> ColumnElement[bool]:
    return and_(Post.status.in_(list(IN_PROGRESS)), Post.lease_expires_at < now)


def locked_ids(
    session: Session, condition: ColumnElement[bool], order: Any, limit: int
) -> list[int]:
    """Ids matching ``condition``, row-locked and skipping rows another beat already holds."""
    stmt = (
        select(Post.id)
        .where(condition)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def publish_may_be_out() -> ColumnElement[bool]:
    """Posts whose open publish attempt recorded a publish call that may have gone through."""
    return Post.id.in_(
        select(PublishAttempt.post_id).where(
            PublishAttempt.status == AttemptStatus.STARTED,
            PublishAttempt.publish_requested.is_not(None),
        )
    )


def publish_recorded() -> ColumnElement[bool]:
    """Posts whose open attempt already holds the target's media id: only recording is left."""
    return Post.id.in_(
        select(PublishAttempt.post_id).where(
            PublishAttempt.status == AttemptStatus.STARTED,
            PublishAttempt.external_id.is_not(None),
        )
    )


def has_open_attempt() -> ColumnElement[bool]:
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
            grace_seconds=self.settings.claim_grace_seconds,
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
            or_(self._fresh(), has_open_attempt()),
            scope,
        )
        return self._claim(Step.PUBLISH, due, Post.publish_at, publishable, etas=True)


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
        try:
            width, height = native_size(formats)
        except RenderError:  # stored by hand: the post goes alone and fails saying why
            continue
        keys[post_id] = f"{width}x{height}|{lora or '-'}|{scale:g}"
    return [replace(d, batch_key=keys.get(d.post_id, "")) for d in claimed]
