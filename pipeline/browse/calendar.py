"""Posts by local day, for a week or a month, of one influencer (in their zone) or of all.

Across all influencers a day may hold thousands of posts: each day shows the first few and a
count of the rest, read through the publish-time index day by day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Influencer, Post, PostStatus
from pipeline.browse.posts import PostRow, post_rows
from pipeline.errors import InputError
from pipeline.planning.influencers import get_influencer
from pipeline.planning.times import zone

__all__ = ["CalendarDay", "CalendarView", "calendar_view", "month_grid_start", "week_start"]

MONTH_DAYS = 42  # six weeks: every month fits, Monday first
WEEK_DAYS = 7


@dataclass(frozen=True)
class CalendarDay:
    day: date
    posts: list[PostRow]
    more: int  # posts that day beyond those shown


@dataclass(frozen=True)
class CalendarView:
    first: date
    days: list[CalendarDay]
    zone: str
    handle: str | None


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_grid_start(day: date) -> date:
    """The Monday on or before the month's first day: the grid's top-left cell."""
    return week_start(day.replace(day=1))


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def calendar_view(
    session: Session,
    *,
    first: date,
    days: int,
    handle: str | None,
    zone_name: str = "UTC",
    per_day: int = 6,
) -> CalendarView:
    """``days`` local days from ``first``: one influencer's posts in their own zone, or every
    influencer's in ``zone_name``. Cancelled posts are left out."""
    if days not in (WEEK_DAYS, MONTH_DAYS):
        raise InputError(f"a calendar shows {WEEK_DAYS} or {MONTH_DAYS} days, not {days}")
    if handle:
        influencer = get_influencer(session, handle)
        tz = zone(influencer.timezone)
        cells = _one_influencer(session, influencer, first, days, tz, per_day)
    else:
        tz = zone(zone_name)
        cells = [_all_on(session, first + timedelta(days=i), tz, per_day) for i in range(days)]
    return CalendarView(first, cells, tz.key, handle or None)


def _one_influencer(
    session: Session, influencer: Influencer, first: date, days: int, tz: ZoneInfo, per_day: int
) -> list[CalendarDay]:
    stmt = (
        select(Post, Influencer.handle)
        .join(Influencer, Influencer.id == Post.influencer_id)
        .where(
            Post.influencer_id == influencer.id,
            Post.publish_at >= _midnight(first, tz),
            Post.publish_at < _midnight(first + timedelta(days=days), tz),
            Post.status != PostStatus.CANCELLED,
        )
        .order_by(Post.publish_at, Post.id)
    )
    by_day: dict[date, list[PostRow]] = {}
    for row in post_rows(session, stmt):
        by_day.setdefault(row.publish_at.astimezone(tz).date(), []).append(row)
    cells = []
    for i in range(days):
        day = first + timedelta(days=i)
        rows = by_day.get(day, [])
        cells.append(CalendarDay(day, rows[:per_day], max(0, len(rows) - per_day)))
    return cells


def _all_on(session: Session, day: date, tz: ZoneInfo, per_day: int) -> CalendarDay:
    window = (
        Post.publish_at >= _midnight(day, tz),
        Post.publish_at < _midnight(day + timedelta(days=1), tz),
        Post.status != PostStatus.CANCELLED,
    )
    stmt = (
        select(Post, Influencer.handle)
        .join(Influencer, Influencer.id == Post.influencer_id)
        .where(*window)
        .order_by(Post.publish_at, Post.id)
        .limit(per_day)
    )
    rows = post_rows(session, stmt)
    total = len(rows)
    if total == per_day:  # there may be more: count them
        total = int(session.scalar(select(func.count()).select_from(Post).where(*window)) or 0)
    return CalendarDay(day, rows, total - len(rows))
