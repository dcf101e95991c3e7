"""Pausing, resuming and deleting: what happens to the posts of an influencer or a calendar.

Paused posts are held where they are; resuming applies the missed-slot policy, never a burst.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from models import ContentCalendar, Influencer, Post, PostStatus
from pipeline.planning.calendars import get_calendar
from pipeline.planning.influencers import get_influencer
from pipeline.settings import Settings
from pipeline.steps.claims import has_open_attempt, not_held, publish_may_be_out
from pipeline.steps.moves import RUN_PREFIX, move_many, return_moves

__all__ = [
    "Deleted",
    "HoldReport",
    "delete_calendar",
    "pause_calendar",
    "pause_influencer",
    "resume_calendar",
    "resume_influencer",
    "return_unstarted_claims",
]

S = PostStatus
_FREE = {"lease_owner": None, "lease_expires_at": None}
# Not out yet: what a pause holds back.
_WAITING = [S.PLANNED, S.GENERATED, S.READY, S.AWAITING_APPROVAL, S.APPROVED]
# What may still move to missed once the slot is past the grace window.
_MISSABLE = [S.PLANNED, S.READY, S.APPROVED]
_CANCELLABLE = [
    S.PLANNED,
    S.GENERATING,
    S.GENERATED,
    S.RENDERING,
    S.READY,
    S.AWAITING_APPROVAL,
    S.APPROVED,
    S.PREVIEW_ONLY,
]


@dataclass(frozen=True)
class HoldReport:
    changed: bool  # False: it already was paused (or active)
    held: int = 0  # posts waiting behind a pause
    returned: int = 0  # claims taken back before any worker started them
    missed: int = 0  # on resume: slots past the grace window, marked missed
    late: int = 0  # on resume: slots within the grace window, published late


def pause_influencer(*, session: Session, handle: str, actor: str) -> HoldReport:
    influencer = get_influencer(session, handle)
    scope = Post.influencer_id == influencer.id
    return _pause(session, influencer, scope, actor=actor, what=f"influencer {handle!r}")


def pause_calendar(*, session: Session, handle: str, name: str, actor: str) -> HoldReport:
    _, calendar = get_calendar(session, handle, name)
    scope = Post.calendar_id == calendar.id
    return _pause(session, calendar, scope, actor=actor, what=f"calendar {name!r}")


def _pause(
    session: Session,
    row: Influencer | ContentCalendar,
    scope: ColumnElement[bool],
    *,
    actor: str,
    what: str,
) -> HoldReport:
    changed = row.active
    row.active = False
    session.flush()
    returned = 0
    if changed:
        returned = return_unstarted_claims(session, scope, actor=actor, detail=f"{what} paused")
    held = _count(session, and_(scope, Post.status.in_(_WAITING)))
    return HoldReport(changed=changed, held=held, returned=returned)


def resume_influencer(
    *, session: Session, handle: str, settings: Settings, now: datetime, actor: str
) -> HoldReport:
    influencer = get_influencer(session, handle)
    scope = Post.influencer_id == influencer.id
    return _resume(session, influencer, scope, settings, now, actor, f"influencer {handle!r}")


def resume_calendar(
    *, session: Session, handle: str, name: str, settings: Settings, now: datetime, actor: str
) -> HoldReport:
    _, calendar = get_calendar(session, handle, name)
    calendar.expand_at = None  # plan the time the pause skipped at the next tick
    scope = Post.calendar_id == calendar.id
    return _resume(session, calendar, scope, settings, now, actor, f"calendar {name!r}")


def _resume(
    session: Session,
    row: Influencer | ContentCalendar,
    scope: ColumnElement[bool],
    settings: Settings,
    now: datetime,
    actor: str,
    what: str,
) -> HoldReport:
    """Release the posts: stale slots become missed now; recent ones go out late."""
    changed = not row.active
    row.active = True
    session.flush()
    grace = now - timedelta(seconds=settings.grace_seconds)
    released = and_(scope, not_held())
    detail = f"slot passed more than {settings.grace_seconds} s ago while {what} was paused"
    # A publish in flight resumes however late (it may be out: never missed), as in the tick.
    stale = select(Post.id).where(
        released, Post.status.in_(_MISSABLE), Post.publish_at < grace, ~has_open_attempt()
    )
    missed = move_many(
        session,
        list(session.scalars(stale)),
        expected=_MISSABLE,
        to=S.MISSED,
        actor=actor,
        detail=detail,
        values={"last_error": detail},
    )
    late = and_(Post.status.in_(_WAITING), Post.publish_at >= grace, Post.publish_at < now)
    return HoldReport(
        changed=changed,
        held=_count(session, and_(scope, ~not_held(), Post.status.in_(_WAITING))),
        missed=len(missed),
        late=_count(session, and_(released, late)),
    )


def return_unstarted_claims(
    session: Session, scope: ColumnElement[bool], *, actor: str, detail: str
) -> int:
    """Take back claims whose message no worker has started (their lease still holds the bare
    dispatch token): they wait in their stable state.

    A worker that receives such a message later finds the post moved and ignores it.
    """
    untaken = and_(scope, Post.lease_owner.is_not(None), ~Post.lease_owner.startswith(RUN_PREFIX))
    in_flight = [S.GENERATING, S.RENDERING, S.PUBLISHING]
    ids = list(session.scalars(select(Post.id).where(untaken, Post.status.in_(in_flight))))
    returned = 0
    for src, dst, which in return_moves():
        condition = and_(untaken, which)
        moved = move_many(
            session,
            ids,
            expected=src,
            to=dst,
            actor=actor,
            detail=f"held: {detail}",
            where=condition,
            values=_FREE,
        )
        returned += len(moved)
    return returned


@dataclass(frozen=True)
class Deleted:
    cancelled: int  # posts not out yet
    in_flight: int  # publishing right now, or maybe out: left to finish
    kept: int  # the calendar's history: published, missed, failed … posts stay


def delete_calendar(*, session: Session, handle: str, name: str, actor: str) -> Deleted:
    """Cancel the calendar's posts that are not out yet, keep its history, drop its rules."""
    _, calendar = get_calendar(session, handle, name)
    scope = Post.calendar_id == calendar.id
    detail = f"calendar {name!r} deleted"
    return_unstarted_claims(session, scope, actor=actor, detail=detail)
    # A post whose publish may be out is left to settle, never cancelled behind Instagram's back.
    cancellable = and_(scope, Post.status.in_(_CANCELLABLE), ~publish_may_be_out())
    ids = list(session.scalars(select(Post.id).where(cancellable)))
    # Released slot keys: SQLite may hand the calendar's id to the next one it creates.
    values = {**_FREE, "slot_key": None}
    cancelled = move_many(
        session,
        ids,
        expected=_CANCELLABLE,
        to=S.CANCELLED,
        actor=actor,
        detail=detail,
        values=values,
    )
    in_flight = _count(session, and_(scope, or_(Post.status == S.PUBLISHING, publish_may_be_out())))
    kept = _count(session, scope) - len(cancelled)
    session.delete(calendar)  # the posts' calendar_id becomes NULL (ON DELETE SET NULL)
    session.flush()
    return Deleted(cancelled=len(cancelled), in_flight=in_flight, kept=kept)


def _count(session: Session, condition: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(Post).where(condition)) or 0)
