"""Calendar expansion: slot rules in the influencer's zone become post rows, once each.

Local wall times (simple days + times, or an RRULE via python-dateutil) resolve to UTC instants;
each slot has a unique key, so expanding again creates nothing new. A calendar that cannot be
expanded is marked broken with the reason; the beat plans the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, selectinload

from models import ContentCalendar, Influencer, Post, SlotRule
from pipeline.captions import build_caption, caption_variables
from pipeline.errors import RuleBroken, RylaError
from pipeline.planning.rotation import pick_caption, rotate
from pipeline.planning.slots import insert_slots
from pipeline.planning.times import local_label, resolve_local, zone
from pipeline.planning.walls import advance_anchor, rule_walls
from pipeline.validation import check_formats

__all__ = [
    "EXPAND_EVERY",
    "Slot",
    "expand_calendar",
    "expand_due_calendars",
    "fill_caption",
    "horizon_of",
    "mark_broken",
    "mark_planned",
    "slot_rows",
    "slots_for_rule",
]


log = logging.getLogger(__name__)

# How often the beat extends a calendar's plan by the time that has passed.
EXPAND_EVERY = timedelta(hours=1)


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
    previous = None
    for wall, n in rule_walls(rule, tz, first, last):
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
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The post rows (as insert parameters) of the rules' slots in [start, end).

    With ``now``, each RRULE's anchor is first moved up behind it. Raises ``RuleBroken``
    naming the first rule that cannot be expanded.
    """
    try:
        check_formats(calendar.formats)
    except Exception as exc:  # stored before today's checks, or by hand: the calendar's own
        raise RuleBroken(None, f"the calendar's formats: {_reason(exc)}") from exc
    rows = []
    for rule in rules:
        try:
            tz = zone(influencer.timezone)
            if now is not None:
                advance_anchor(rule, tz, now)
            rows += _rule_rows(calendar, influencer, rule, tz, start, end)
        except Exception as exc:  # any failure of a stored rule is that rule's: name it
            raise RuleBroken(rule.id, _reason(exc)) from exc
    return rows


def _rule_rows(
    calendar: ContentCalendar,
    influencer: Influencer,
    rule: SlotRule,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    lead = timedelta(minutes=calendar.lead_minutes)
    rows = []
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


def _reason(exc: Exception) -> str:
    """One line for people: our own errors say what to do; anything else names its type."""
    if isinstance(exc, RuleBroken):
        return exc.reason
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = text if isinstance(exc, RylaError) else f"{type(exc).__name__}: {text}".rstrip(": ")
    return line[:_REASON_CHARS]


_REASON_CHARS = 500


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


def mark_broken(calendar: ContentCalendar, reason: str, *, now: datetime) -> None:
    """Record why a calendar cannot be planned; its posts already planned go on."""
    log.warning("calendar %s cannot be planned: %s", calendar.id, reason)
    if calendar.broken_reason != reason:
        calendar.broken_reason, calendar.broken_at = reason, now


def mark_planned(calendar: ContentCalendar) -> None:
    calendar.broken_reason = calendar.broken_at = None


def expand_due_calendars(
    session: Session, *, now: datetime, horizon_days: int, limit: int | None = None
) -> int:
    """Extend active calendars that are due (at most ``limit`` of them, most overdue first).

    Rows another beat is expanding right now are skipped rather than waited for. A calendar
    whose rules cannot be expanded is marked broken and retried after ``EXPAND_EVERY``; the
    others are planned as usual.
    """
    stmt = (
        select(ContentCalendar, Influencer)
        .join(Influencer, Influencer.id == ContentCalendar.influencer_id)
        .where(
            ContentCalendar.active.is_(True),
            Influencer.active.is_(True),
            # A calendar that never planned and is marked broken waits like the others: its
            # expand_at says when it is tried again (a new or edited one has none).
            or_(ContentCalendar.expand_at.is_(None), ContentCalendar.expand_at <= now),
        )
        .order_by(ContentCalendar.expand_at.is_not(None), ContentCalendar.expand_at)
        .limit(limit)
        .options(selectinload(ContentCalendar.rules))
        .with_for_update(skip_locked=True, of=ContentCalendar)
    )
    batches: list[_Batch] = []
    for calendar, influencer in session.execute(stmt):
        calendar.expand_at = now + EXPAND_EVERY
        end = now + horizon_of(calendar, horizon_days)
        start = max(now, calendar.planned_until or now)
        try:
            rows = slot_rows(calendar, influencer, calendar.rules, start=start, end=end, now=now)
        except RuleBroken as exc:
            mark_broken(calendar, str(exc), now=now)
            continue
        batches.append(_Batch(calendar, calendar.planned_until, rows))
        calendar.planned_until = end
        mark_planned(calendar)
    session.flush()  # the calendars' own changes stay out of the insert's savepoint
    return _insert_batches(session, batches, now)


@dataclass
class _Batch:
    calendar: ContentCalendar
    planned_until: datetime | None  # before this tick: restored if its rows are refused
    rows: list[dict[str, Any]]


def _insert_batches(session: Session, batches: list[_Batch], now: datetime) -> int:
    """All rows in one insert; when the database refuses it, each calendar's rows on their own."""
    try:
        with session.begin_nested():
            return insert_slots(session, [row for batch in batches for row in batch.rows])
    except (DataError, IntegrityError):
        log.warning("planning insert refused; inserting calendar by calendar to find the cause")
    created = 0
    for batch in batches:
        try:
            with session.begin_nested():
                created += insert_slots(session, batch.rows)
        except (DataError, IntegrityError) as exc:
            batch.calendar.planned_until = batch.planned_until
            mark_broken(batch.calendar, _database_reason(exc), now=now)
    return created


def _database_reason(exc: DataError | IntegrityError) -> str:
    # The driver's own first line: the full text repeats the statement and every parameter.
    first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc).__name__
    return f"the database refused its posts ({first[:_REASON_CHARS]}): edit its rules"
