"""Local times in an influencer's zone: zones, days, times, RRULEs, relative times.

Every parser raises ``ScheduleError`` with one line naming the value and the fix.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil.rrule import rrule, rrulestr

from pipeline.errors import ScheduleError

__all__ = [
    "first_occurrence",
    "iana_zone",
    "local_label",
    "parse_days",
    "parse_local_time",
    "parse_rrule",
    "parse_times",
    "parse_when",
    "resolve_local",
    "rrule_parts",
    "zone",
]


_DAY_NAMES = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


_DAY_GROUPS = {"daily": [1, 2, 3, 4, 5, 6, 7], "weekdays": [1, 2, 3, 4, 5], "weekends": [6, 7]}


_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or Asia/Tokyo"
        ) from None


# Files in the zone database that are not zones people mean: the machine's own setting (which
# differs between machines), the old POSIX default and the "no zone" placeholder.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


def iana_zone(name: str) -> ZoneInfo:
    """A zone given by a person: an IANA name (``UTC`` and ``Etc/UTC`` included), nothing else."""
    if name not in _iana_names():
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or Asia/Tokyo"
        )
    return zone(name)


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
    try:
        if match := _RELATIVE.match(text):
            return now + timedelta(**{_UNITS[match[2]]: int(match[1])})
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f"malformed time {text[:40]!r}: use 'YYYY-MM-DD HH:MM' (local), 'now' or '+30m'",
                field="publish_at",
            ) from None
        if not _FIRST_YEAR <= parsed.year <= _LAST_YEAR:
            raise OverflowError(parsed.year)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        return resolve_local(parsed.date(), parsed.time(), tz)
    except OverflowError:
        raise ScheduleError(
            f"time {text[:40]!r} is out of range: give a time in the coming months, "
            "e.g. '+2h' or 'YYYY-MM-DD HH:MM'",
            field="publish_at",
        ) from None


# Years a time may name at all (a one-off's own window is checked where it is planned): far
# enough from 1 and 9999 that moving between zones never leaves what datetime can hold.
_FIRST_YEAR, _LAST_YEAR = 1970, 2999


_SLOWEST_FIRST = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")


def rrule_parts(text: str) -> dict[str, str]:
    """The rule's NAME=VALUE parts, for the checks dateutil does not make."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body or any(c in body for c in "\r\n:"):
        raise ScheduleError(
            f"malformed rrule {text!r}: give one RRULE line such as "
            "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0 (the start goes in its own field)"
        )
    pairs = [part.partition("=") for part in body.upper().split(";") if part]
    return {name.strip(): value.strip() for name, _, value in pairs}


def _check_rrule_parts(text: str, parts: dict[str, str]) -> None:
    freq = parts.get("FREQ", "")
    if freq not in _SLOWEST_FIRST:
        raise ScheduleError(
            f"rrule {text!r} has FREQ={freq or '(none)'}: use one of "
            f"{', '.join(_SLOWEST_FIRST)} (posts come at most hourly)"
        )
    interval = parts.get("INTERVAL", "1")
    # dateutil loops forever on INTERVAL=0, so this is checked before it sees the rule.
    if not interval.isdigit() or int(interval) < 1:
        raise ScheduleError(f"rrule {text!r} has INTERVAL={interval}: use a whole number >= 1")
    if parts.get("BYSECOND", "0") != "0":
        raise ScheduleError(f"rrule {text!r} has BYSECOND: posting times are whole minutes")


def parse_rrule(text: str, dtstart: datetime, tz: ZoneInfo) -> rrule:
    """An RFC 5545 RRULE whose occurrences are local wall times from ``dtstart`` (naive, local).

    A ``UNTIL`` in UTC (``…Z``) needs a zone-aware start in dateutil; either way the wall
    times are read without their zone and resolved by ``resolve_local``.
    """
    _check_rrule_parts(text, rrule_parts(text))
    body = text.strip()
    try:
        rule = rrulestr(body, dtstart=dtstart)
    except (ValueError, TypeError, IndexError, KeyError) as first:
        try:
            rule = rrulestr(body, dtstart=dtstart.replace(tzinfo=tz))
        except (ValueError, TypeError, IndexError, KeyError):
            raise ScheduleError(f"malformed rrule {text!r}: {first}") from None
    if not isinstance(rule, rrule):  # pragma: no cover - one line never makes an rruleset
        raise ScheduleError(f"malformed rrule {text!r}: give exactly one RRULE")
    return rule


def first_occurrence(rule: rrule, *, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The rule's first local wall time at or after the instant ``after`` (None: it has ended).

    dateutil proves a rule empty by scanning up to the year 9999: seconds, once, at input time.
    """
    local = after.astimezone(tz).replace(tzinfo=None)
    for wall in rule:
        if wall.replace(tzinfo=None) >= local:
            return wall.replace(tzinfo=None)
    return None


def local_label(instant: datetime, tz: ZoneInfo) -> str:
    """The wall time people read, e.g. "2026-11-27 09:00 Europe/Berlin" (fits 40 characters)."""
    local = instant.astimezone(tz)
    if len(tz.key) > 23:  # the longest zone names would overflow the column: use the offset
        return local.strftime("%Y-%m-%d %H:%M UTC%z")
    return local.strftime(f"%Y-%m-%d %H:%M {tz.key}")
