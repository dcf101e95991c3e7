"""Calendar expansion: slot rules in the influencer's zone become post rows, once each.

Local wall times are resolved to UTC instants; each slot has a unique key, so expanding again
creates nothing new.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from models import ContentCalendar, Influencer, Post, SlotRule

__all__ = [
    "ScheduleError",
    "Slot",
    "expand_calendar",
    "expand_due_calendars",
    "parse_days",
    "parse_local_time",
    "parse_times",
    "parse_when",
    "resolve_local",
    "slots_for_rule",
    "zone",
]

_DAY_NAMES = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_DAY_GROUPS = {"daily": [1, 2, 3, 4, 5, 6, 7], "weekdays": [1, 2, 3, 4, 5], "weekends": [6, 7]}
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleError(ValueError):
    """A zone, day or time in a schedule is not valid."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or Asia/Tokyo"
        ) from None


def parse_local_time(text: str) -> time:
    match = _TIME.match(text.strip())
    if not match:
        raise ScheduleError(f"malformed time {text!r}: use 24-hour HH:MM, e.g. 09:00 or 18:30")
    return time(int(match[1]), int(match[2]))


def parse_times(text: str) -> list[str]:
    times = sorted({parse_local_time(part).strftime("%H:%M") for part in text.split(",") if part})
    if not times:
        raise ScheduleError("no posting time given: use e.g. --times 09:00,18:30")
    return times


def parse_days(text: str) -> list[int]:
    days: set[int] = set()
    for raw in (p.strip().lower() for p in text.split(",")):
        if not raw:
            continue
        if raw in _DAY_GROUPS:
            days.update(_DAY_GROUPS[raw])
        elif raw[:3] in _DAY_NAMES and (len(raw) == 3 or raw.endswith("day")):
            days.add(_DAY_NAMES[raw[:3]])
        else:
            raise ScheduleError(
                f"unknown day {raw!r}: use mon..sun, daily, weekdays or weekends, comma-separated"
            )
    if not days:
        raise ScheduleError("no posting day given: use e.g. --days mon,wed,fri or daily")
    return sorted(days)


def resolve_local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time.

    A time that happens twice (clocks fall back) is the first one (fold=0). A time that does
    not exist (clocks jump forward) moves to the first valid instant after it.
    """
    naive = datetime.combine(day, at)
    for minute in range(0, 24 * 60):  # gaps are at most a few hours; minute steps find the end
        candidate = naive + timedelta(minutes=minute)
        local = candidate.replace(tzinfo=tz)
        if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == candidate:
            return local.astimezone(UTC)
    raise ScheduleError(f"{naive} has no valid instant in {tz.key}")  # pragma: no cover


_RELATIVE = re.compile(r"^\+(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """``now``, ``+15m`` / ``+2h``, a local ``YYYY-MM-DD HH:MM`` in ``tz``, or ISO with offset."""
    text = text.strip()
    if text == "now":
        return now
    if match := _RELATIVE.match(text):
        return now + timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ScheduleError(
            f"malformed time {text!r}: use 'YYYY-MM-DD HH:MM' (local), 'now' or '+30m'"
        ) from None
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    return resolve_local(parsed.date(), parsed.time(), tz)


@dataclass(frozen=True)
class Slot:
    key: str
    publish_at: datetime
    local_label: str
    scene: str
    environment: str
    outfit: str


def _pick(options: Sequence[str], n: int) -> str:
    return options[n % len(options)] if options else ""


def slots_for_rule(
    rule: SlotRule, *, tz: ZoneInfo, start: datetime, end: datetime
) -> Iterator[Slot]:
    """Every slot of a rule in [start, end), with its deterministic rotation."""
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        if day.isoweekday() in rule.days_of_week:
            for index, text in enumerate(rule.times):
                at = resolve_local(day, parse_local_time(text), tz)
                if start <= at < end:
                    # The slot's ordinal picks its presets: the same plan on every expansion.
                    n = day.toordinal() * len(rule.times) + index
                    yield Slot(
                        key=f"{rule.calendar_id}:{rule.id}:{day.isoformat()}T{text}",
                        publish_at=at,
                        local_label=f"{day.isoformat()} {text} {tz.key}",
                        scene=_pick(rule.scenes, n),
                        environment=_pick(rule.environments, n // max(1, len(rule.scenes))),
                        outfit=_pick(rule.outfits, n),
                    )
        day += timedelta(days=1)


def expand_calendar(
    session: Session, calendar: ContentCalendar, *, tz: ZoneInfo, start: datetime, end: datetime
) -> int:
    """Create the posts of every slot in [start, end) that does not exist yet."""
    rows = [
        {
            "influencer_id": calendar.influencer_id,
            "character_id": calendar.character_id,
            "calendar_id": calendar.id,
            "slot_key": slot.key,
            "publish_at": slot.publish_at,
            "generate_at": slot.publish_at - timedelta(minutes=calendar.lead_minutes),
            "local_publish_time": slot.local_label,
            "scene": slot.scene,
            "environment": slot.environment,
            "outfit": slot.outfit,
            "caption_text": rule.caption_text,
            "hashtags": list(rule.hashtags),
            "formats": list(calendar.formats),
        }
        for rule in calendar.rules
        for slot in slots_for_rule(rule, tz=tz, start=start, end=end)
    ]
    calendar.planned_until = end
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(Post).on_conflict_do_nothing(index_elements=["slot_key"]).returning(Post.id)
    return len(list(session.scalars(stmt, rows)))


def expand_due_calendars(session: Session, *, now: datetime, horizon_days: int) -> int:
    """Extend every active calendar whose plan ends within an hour of the horizon."""
    end = now + timedelta(days=horizon_days)
    stmt = (
        select(ContentCalendar, Influencer.timezone)
        .join(Influencer, Influencer.id == ContentCalendar.influencer_id)
        .where(
            ContentCalendar.active.is_(True),
            Influencer.active.is_(True),
            or_(
                ContentCalendar.planned_until.is_(None),
                ContentCalendar.planned_until < end - timedelta(hours=1),
            ),
        )
    )
    created = 0
    for calendar, tz_name in session.execute(stmt):
        start = max(now, calendar.planned_until or now)
        created += expand_calendar(session, calendar, tz=zone(tz_name), start=start, end=end)
    return created
