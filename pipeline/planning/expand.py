"""Calendar expansion: slot rules in the influencer's zone become post rows, once each.

Local wall times (simple days + times, or an RRULE via python-dateutil) resolve to UTC instants;
each slot has a unique key, so expanding again creates nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from models import ContentCalendar, Influencer, Post, SlotRule
from pipeline.captions import build_caption, caption_variables
from pipeline.planning.rotation import pick_caption, rotate
from pipeline.planning.slots import insert_slots
from pipeline.planning.times import local_label, parse_local_time, parse_rrule, resolve_local, zone

__all__ = [
    "EXPAND_EVERY",
    "Slot",
    "expand_calendar",
    "expand_due_calendars",
    "fill_caption",
    "horizon_of",
    "slot_rows",
    "slots_for_rule",
]


# How often the beat extends a calendar's plan by the time that has passed.
EXPAND_EVERY = timedelta(hours=1)


# A Monday: simple rules count their slots from here, so the count never depends on "now".
_EPOCH = date(2001, 1, 1)


def _simple_walls(rule: SlotRule, first: date, last: date) -> Iterator[tuple[datetime, int]]:
    """(local wall time, slot ordinal) for a days + times rule, ordinals counted from _EPOCH."""
    days = sorted(rule.days_of_week)
    times = [parse_local_time(text) for text in rule.times]
    day = first
    while day <= last:
        weekday = day.isoweekday()
        if weekday in days:
            weeks = (day - _EPOCH).days // 7
            before = weeks * len(days) + sum(1 for d in days if d < weekday)
            for index, at in enumerate(times):
                yield datetime.combine(day, at), before * len(times) + index
        day += timedelta(days=1)


def _rrule_walls(
    rule: SlotRule, tz: ZoneInfo, first: date, last: date
) -> Iterator[tuple[datetime, int]]:
    """(local wall time, slot ordinal) for an RRULE rule, ordinals counted from its DTSTART."""
    assert rule.rrule and rule.dtstart
    parsed = parse_rrule(rule.rrule, datetime.fromisoformat(rule.dtstart), tz)
    for n, wall in enumerate(parsed):
        wall = wall.replace(tzinfo=None)
        if wall.date() > last:
            return
        if wall.date() >= first:
            yield wall, n


@dataclass(frozen=True)
class Slot:
    key: str
    publish_at: datetime
    local_label: str
    scene: str
    environment: str
    outfit: str
    n: int = 0


def slots_for_rule(
    rule: SlotRule, *, tz: ZoneInfo, start: datetime, end: datetime
) -> Iterator[Slot]:
    """Every slot of a rule in [start, end), with its deterministic rotation."""
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    walls = _rrule_walls(rule, tz, first, last) if rule.rrule else _simple_walls(rule, first, last)
    previous = None
    for wall, n in walls:
        at = resolve_local(wall.date(), wall.time(), tz)
        # Two wall times inside one DST gap land on the same instant: that is one post.
        if not start <= at < end or at == previous:
            continue
        previous = at
        pick = rotate(n, rule.scenes, rule.environments, rule.outfits)
        yield Slot(
            key=f"{rule.calendar_id}:{rule.id}:{wall:%Y-%m-%dT%H:%M}",
            publish_at=at,
            local_label=local_label(at, tz),
            scene=pick.scene,
            environment=pick.environment,
            outfit=pick.outfit,
            n=n,
        )


def fill_caption(template: str, *, influencer: Influencer, slot: Slot) -> str:
    """A caption template with the slot's variables ({scene}, {day}, {time} …) filled in."""
    stand_in = Post(
        publish_at=slot.publish_at,
        scene=slot.scene,
        environment=slot.environment,
        outfit=slot.outfit,
    )
    variables = caption_variables(influencer=influencer, post=stand_in)
    return build_caption(
        template=template, text="", variables=variables, default_hashtags=(), post_hashtags=()
    ).text


def slot_rows(
    calendar: ContentCalendar,
    influencer: Influencer,
    rules: Iterable[SlotRule],
    *,
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    """The post rows (as insert parameters) of the rules' slots in [start, end)."""
    tz = zone(influencer.timezone)
    lead = timedelta(minutes=calendar.lead_minutes)
    rows = []
    for rule in rules:
        for slot in slots_for_rule(rule, tz=tz, start=start, end=end):
            template = pick_caption(slot.n, rule.caption_templates)
            rows.append(
                {
                    "influencer_id": calendar.influencer_id,
                    "character_id": calendar.character_id,
                    "calendar_id": calendar.id,
                    "slot_key": slot.key,
                    "publish_at": slot.publish_at,
                    "generate_at": slot.publish_at - lead,
                    "local_publish_time": slot.local_label,
                    "scene": slot.scene,
                    "environment": slot.environment,
                    "outfit": slot.outfit,
                    "caption_text": (
                        rule.caption_text
                        if template is None
                        else fill_caption(template, influencer=influencer, slot=slot)
                    ),
                    "hashtags": list(rule.hashtags),
                    "formats": list(calendar.formats),
                }
            )
    return rows


def expand_calendar(
    session: Session,
    calendar: ContentCalendar,
    influencer: Influencer,
    *,
    start: datetime,
    end: datetime,
) -> int:
    """Create the posts of every slot in [start, end) that does not exist yet."""
    created = insert_slots(
        session, slot_rows(calendar, influencer, calendar.rules, start=start, end=end)
    )
    calendar.planned_until = end
    return created


def horizon_of(calendar: ContentCalendar, default_days: int) -> timedelta:
    return timedelta(days=calendar.horizon_days or default_days)


def expand_due_calendars(
    session: Session, *, now: datetime, horizon_days: int, limit: int | None = None
) -> int:
    """Extend active calendars that are due (at most ``limit`` of them, most overdue first).

    Rows another beat is expanding right now are skipped rather than waited for.
    """
    stmt = (
        select(ContentCalendar, Influencer)
        .join(Influencer, Influencer.id == ContentCalendar.influencer_id)
        .where(
            ContentCalendar.active.is_(True),
            Influencer.active.is_(True),
            or_(
                ContentCalendar.expand_at.is_(None),
                ContentCalendar.expand_at <= now,
                ContentCalendar.planned_until.is_(None),
            ),
        )
        .order_by(ContentCalendar.expand_at.is_not(None), ContentCalendar.expand_at)
        .limit(limit)
        .options(selectinload(ContentCalendar.rules))
        .with_for_update(skip_locked=True, of=ContentCalendar)
    )
    rows: list[dict[str, Any]] = []
    for calendar, influencer in session.execute(stmt):
        end = now + horizon_of(calendar, horizon_days)
        start = max(now, calendar.planned_until or now)
        rows += slot_rows(calendar, influencer, calendar.rules, start=start, end=end)
        calendar.planned_until, calendar.expand_at = end, now + EXPAND_EVERY
    return insert_slots(session, rows)
