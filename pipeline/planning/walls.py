"""A slot rule's local wall times with their ordinals, and the anchors that keep them cheap.

An RRULE's n-th slot is counted from its start; a stored anchor (an occurrence and its
ordinal, kept a little behind "now") lets expansion begin there instead of at the start, so its
cost does not grow with the rule's age, and every expansion still counts the same ordinals.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models import SlotRule
from pipeline.errors import ScheduleError
from pipeline.planning.times import parse_local_time, parse_rrule, rrule_parts

__all__ = [
    "ANCHOR_LAG",
    "MAX_WALK",
    "advance_anchor",
    "anchor_before",
    "rrule_walls",
    "rule_walls",
    "simple_walls",
]

# How far behind "now" an anchor stays: every window planned starts after it (the beat's and
# an edit's windows start at "now", a day earlier in local dates).
ANCHOR_LAG = timedelta(days=2)
# Slots walked to reach a window before giving up: a start this far back is refused at the door
# (it would cost every expansion), so only a rule stored before that check meets it.
MAX_WALK = 200_000

# A Monday: simple rules count their slots from here, so the count never depends on "now".
_EPOCH = date(2001, 1, 1)


def simple_walls(rule: SlotRule, first: date, last: date) -> Iterator[tuple[datetime, int]]:
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


def rule_walls(
    rule: SlotRule, tz: ZoneInfo, first: date, last: date
) -> Iterator[tuple[datetime, int]]:
    """Every (local wall time, ordinal) of a rule on the local dates ``first``..``last``."""
    if rule.rrule:
        return rrule_walls(rule, tz, first, last)
    return simple_walls(rule, first, last)


def rrule_walls(
    rule: SlotRule, tz: ZoneInfo, first: date, last: date
) -> Iterator[tuple[datetime, int]]:
    """(local wall time, slot ordinal) for an RRULE rule, ordinals counted from its start."""
    start, base = _start_point(rule, datetime.combine(first, time.min))
    walked = 0
    for wall, n in _occurrences(rule, tz, start, base):
        if wall.date() > last:
            return
        if wall.date() >= first:
            yield wall, n
            continue
        walked += 1
        if walked > MAX_WALK:
            raise _too_far_back(rule)


def anchor_before(rule: SlotRule, tz: ZoneInfo, before: datetime) -> tuple[str, int] | None:
    """The rule's last occurrence before the local wall time ``before``, with its ordinal.

    ``None`` when it has none, or when the rule is one an anchor cannot restart (see
    ``_anchorable``): those always count from their start.
    """
    if not rule.rrule or not _anchorable(rule.rrule):
        return None
    start, base = _start_point(rule, before)
    found = None
    for walked, (wall, n) in enumerate(_occurrences(rule, tz, start, base)):
        if wall >= before:
            break
        if walked > MAX_WALK:
            raise _too_far_back(rule)
        found = (wall.isoformat(timespec="minutes"), n)
    return found


def advance_anchor(rule: SlotRule, tz: ZoneInfo, now: datetime) -> None:
    """Move a rule's anchor up to ``ANCHOR_LAG`` before ``now`` (a no-op for simple rules)."""
    before = now.astimezone(tz).replace(tzinfo=None) - ANCHOR_LAG
    found = anchor_before(rule, tz, before)
    if found is not None and found != (rule.anchor_at, rule.anchor_n):
        rule.anchor_at, rule.anchor_n = found


def _anchorable(text: str) -> bool:
    # dateutil builds a WEEKLY rule's first week from its start's weekday on, so BYSETPOS would
    # count positions in a shorter week when restarted mid-week; other rules restart exactly.
    parts = rrule_parts(text)
    return not (parts.get("FREQ") == "WEEKLY" and "BYSETPOS" in parts)


def _start_point(rule: SlotRule, earliest: datetime) -> tuple[datetime, int]:
    """Where to count from to see every wall from ``earliest`` on: the anchor when it is not
    after it, else the start."""
    if rule.anchor_at and rule.anchor_n is not None and _anchorable(rule.rrule or ""):
        anchor = _read_wall(rule.anchor_at, "anchor")
        if anchor <= earliest:
            return anchor, rule.anchor_n
    return _read_wall(rule.dtstart, "start"), 0


def _occurrences(
    rule: SlotRule, tz: ZoneInfo, start: datetime, base: int
) -> Iterator[tuple[datetime, int]]:
    assert rule.rrule
    parsed = parse_rrule(rule.rrule, start, tz)
    if base:
        count = rrule_parts(rule.rrule).get("COUNT")
        if count is not None and count.isdigit():
            left = int(count) - base  # COUNT counts from the start, the anchor included
            if left <= 0:
                return
            parsed = parsed.replace(count=left)
    for i, wall in enumerate(parsed):
        yield wall.replace(tzinfo=None), base + i


def _read_wall(text: str | None, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text or "")
    except ValueError:
        raise ScheduleError(
            f"its stored {what} {text!r} is not a local 'YYYY-MM-DDTHH:MM': "
            "give the rule a new --start"
        ) from None


def _too_far_back(rule: SlotRule) -> ScheduleError:
    return ScheduleError(
        f"its start {rule.dtstart} is more than {MAX_WALK:,} slots back: give the rule a later "
        "--start (a date on the same weekday and time keeps its rhythm)"
    )
