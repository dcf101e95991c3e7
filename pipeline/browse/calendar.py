"""Posts by local day, for a week or a month, of one influencer (in their zone) or of all.

Across all influencers a day may hold thousands of posts: each day shows the first few and a
count of the rest, read through the publish-time index day by day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, literal, select, union_all
from sqlalchemy.orm import Session

from models import Influencer, Post, PostStatus
from pipeline.browse.posts import PostRow, post_rows, rows_query
from pipeline.errors import InputError
from pipeline.planning.influencers import get_influencer
from pipeline.planning.times import zone

__all__ = [
    "MORE_CAP",
    "CalendarDay",
    "CalendarView",
    "calendar_view",
    "month_grid_start",
    "week_start",
]

MONTH_DAYS = 42  # six weeks: every month fits, Monday first
WEEK_DAYS = 7
# Across everyone a day's remaining posts are counted up to this many ("99+ more"): an exact
# count of thousands of rows per cell would cost more than the whole rest of the page.
MORE_CAP = 99


@dataclass(frozen=True)
class CalendarDay:
    day: date
    posts: list[PostRow]
    more: int  # posts that day beyond those shown
    more_capped: bool = False  # there are at least ``more`` (the count stopped at MORE_CAP)


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
        cells = _everyone(session, first, days, tz, per_day)
    return CalendarView(first, cells, tz.key, handle or None)


def _one_influencer(
    session: Session, influencer: Influencer, first: date, days: int, tz: ZoneInfo, per_day: int
) -> list[CalendarDay]:
    stmt = (
        rows_query()
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


def _window(day: date, tz: ZoneInfo) -> tuple[ColumnElement[bool], ...]:
    return (
        Post.publish_at >= _midnight(day, tz),
        Post.publish_at < _midnight(day + timedelta(days=1), tz),
        Post.status != PostStatus.CANCELLED,
    )


def _everyone(
    session: Session, first: date, days: int, tz: ZoneInfo, per_day: int
) -> list[CalendarDay]:
    """Each day's first posts and a capped count of the rest, in two queries for all days:
    one index range per day inside each (a UNION ALL), never a scan of the whole month."""
    dates = [first + timedelta(days=i) for i in range(days)]
    firsts = [
        select(Post.id).where(*_window(d, tz)).order_by(Post.publish_at, Post.id).limit(per_day)
        for d in dates
    ]
    ids = list(session.scalars(union_all(*(select(q.subquery().c.id) for q in firsts))))
    by_day: dict[date, list[PostRow]] = {}
    stmt = rows_query().where(Post.id.in_(ids)).order_by(Post.publish_at, Post.id)
    for row in post_rows(session, stmt) if ids else []:
        by_day.setdefault(row.publish_at.astimezone(tz).date(), []).append(row)
    full = [d for d in dates if len(by_day.get(d, [])) == per_day]
    more = _capped_counts(session, full, tz, per_day) if full else {}
    return [
        CalendarDay(d, by_day.get(d, []), more.get(d, 0), more.get(d, 0) == MORE_CAP) for d in dates
    ]


def _capped_counts(session: Session, dates: list[date], tz: ZoneInfo, skip: int) -> dict[date, int]:
    counts = []
    for index, day in enumerate(dates):
        rest = (
            select(Post.id)
            .where(*_window(day, tz))
            .order_by(Post.publish_at, Post.id)
            .offset(skip)
            .limit(MORE_CAP)
            .subquery()
        )
        counts.append(
            select(literal(index).label("day"), func.count().label("n")).select_from(rest)
        )
    return {dates[index]: int(n) for index, n in session.execute(union_all(*counts))}
