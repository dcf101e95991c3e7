"""Checking slot rules and calendar settings as people give them, before any row changes.

Each check raises ``InputError`` with one line naming the field, the value and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from models import Influencer, SlotRule
from pipeline.captions import merge_hashtags
from pipeline.errors import CaptionError, InputError, ScheduleError
from pipeline.generators.prompts import ENVIRONMENTS, SCENES
from pipeline.planning.expand import Slot, fill_caption
from pipeline.planning.times import first_occurrence, parse_days, parse_rrule, parse_times, zone
from pipeline.settings import Settings
from pipeline.validation import check_formats, check_lead_minutes

__all__ = ["CalendarSettingsIn", "RuleIn", "calendar_fields", "describe_rule", "rule_fields"]

_DAY_ABBR = {1: "mon", 2: "tue", 3: "wed", 4: "thu", 5: "fri", 6: "sat", 7: "sun"}


@dataclass(frozen=True)
class RuleIn:
    """A slot rule as given: days + times, or an RRULE (with an optional local start).

    ``None`` means "not given": the field keeps its value on an edit, or its default.
    """

    days: str | None = None
    times: str | None = None
    rrule: str | None = None
    start: str | None = None
    scenes: Sequence[str] | None = None
    environments: Sequence[str] | None = None
    outfits: Sequence[str] | None = None
    caption_templates: Sequence[str] | None = None
    caption_text: str | None = None
    hashtags: Sequence[str] | None = None


@dataclass(frozen=True)
class CalendarSettingsIn:
    lead_minutes: int | None = None
    formats: Sequence[str] | None = None
    horizon_days: int | None = None


@contextmanager
def _as_input_error() -> Iterator[None]:
    try:
        yield
    except ScheduleError as exc:
        raise InputError(str(exc)) from None


def rule_fields(
    data: RuleIn, *, influencer: Influencer, current: SlotRule | None, now: datetime
) -> dict[str, Any]:
    """The SlotRule columns ``data`` sets, every one checked; ``current`` is the rule edited."""
    with _as_input_error():
        tz = zone(influencer.timezone)
        fields = _schedule_fields(data, current, tz, now)
    fields |= _rotation_fields(data)
    fields |= _caption_fields(data, influencer, now)
    return fields


def _schedule_fields(
    data: RuleIn, current: SlotRule | None, tz: ZoneInfo, now: datetime
) -> dict[str, Any]:
    simple = data.days is not None or data.times is not None
    if data.rrule is not None and simple:
        raise InputError("a rule has days and times or an rrule, not both: leave one out")
    if data.rrule is not None:
        start = data.start if data.start is not None else current.dtstart if current else None
        return _rrule_fields(data.rrule, start, tz, now)
    if data.start is not None:
        if current is None or not current.rrule:
            raise InputError(f"start {data.start!r} applies to rrule rules only: leave it out")
        return _rrule_fields(current.rrule, data.start, tz, now)
    if not simple and current is not None:
        return {}
    was_simple = current is not None and not current.rrule
    days = parse_days(data.days) if data.days is not None else None
    times = parse_times(data.times) if data.times is not None else None
    days = days or (current.days_of_week if current and was_simple else None)
    times = times or (current.times if current and was_simple else None)
    if not days or not times:
        raise InputError(
            "a rule needs days and times (e.g. --days mon,wed --times 09:00) or an rrule"
        )
    return {"days_of_week": days, "times": times, "rrule": None, "dtstart": None}


def _rrule_fields(text: str, start: str | None, tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    dtstart = _parse_start(start, tz, now)
    rule = parse_rrule(text, dtstart, tz)
    if first_occurrence(rule, after=now, tz=tz) is None:
        local = now.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        raise InputError(
            f"rrule {text!r} has no occurrence after {local} ({tz.key}): "
            "check its COUNT, UNTIL, start and BY… parts"
        )
    return {
        "rrule": text.strip(),
        "dtstart": dtstart.strftime("%Y-%m-%dT%H:%M"),
        "days_of_week": [],
        "times": [],
    }


def _parse_start(text: str | None, tz: ZoneInfo, now: datetime) -> datetime:
    """The rule's DTSTART as a local wall time; by default today's local midnight."""
    if text is None or not text.strip():
        return datetime.combine(now.astimezone(tz).date(), datetime.min.time())
    try:
        start = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"malformed start {text!r}: use a local 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM'"
        ) from None
    if start.tzinfo is not None or start.second or start.microsecond:
        raise InputError(
            f"start {text!r} must be a local wall time in whole minutes, without an offset"
        )
    return start


_ROTATIONS: tuple[tuple[str, str, Sequence[str] | None], ...] = (
    ("scenes", "scene", tuple(SCENES)),
    ("environments", "environment", tuple(ENVIRONMENTS)),
    ("outfits", "outfit", None),
)


def _rotation_fields(data: RuleIn) -> dict[str, Any]:
    fields = {}
    for name, singular, presets in _ROTATIONS:
        given: Sequence[str] | None = getattr(data, name)
        if given is not None:
            fields[name] = _rotation(name, singular, given, presets)
    return fields


def _rotation(
    name: str, singular: str, given: Sequence[str], presets: Sequence[str] | None
) -> list[str]:
    items = [item.strip() for item in given if item.strip()]
    if not items:
        raise InputError(f"empty rotation: {name} lists nothing; name at least one or leave it out")
    for item in items:
        if presets is not None and item not in presets:
            raise InputError(
                f"unknown {singular} {item!r} in {name}: choose from {', '.join(presets)}"
            )
        if items.count(item) > 1:
            raise InputError(f"{name} lists {item!r} twice: name each {singular} once")
    return items


def _caption_fields(data: RuleIn, influencer: Influencer, now: datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if data.caption_templates is not None:
        fields["caption_templates"] = _templates(data.caption_templates, influencer, now)
    if data.caption_text is not None:
        fields["caption_text"] = data.caption_text
    if data.hashtags is not None:
        try:
            fields["hashtags"] = list(merge_hashtags(data.hashtags))
        except CaptionError as exc:
            raise InputError(str(exc)) from None
    return fields


def _templates(given: Sequence[str], influencer: Influencer, now: datetime) -> list[str]:
    templates = [text for text in given if text.strip()]
    if not templates:
        raise InputError("empty rotation: caption templates list nothing; give one or leave out")
    sample = Slot(key="", publish_at=now, local_label="", scene="x", environment="y", outfit="z")
    for index, template in enumerate(templates, start=1):
        try:
            fill_caption(template, influencer=influencer, slot=sample)
        except CaptionError as exc:
            raise InputError(f"caption template {index} {template!r}: {exc}") from None
    return templates


def calendar_fields(data: CalendarSettingsIn, *, settings: Settings) -> dict[str, Any]:
    """The ContentCalendar columns ``data`` sets, every one checked."""
    fields: dict[str, Any] = {}
    if data.lead_minutes is not None:
        fields["lead_minutes"] = check_lead_minutes(data.lead_minutes)
    if data.formats is not None:
        fields["formats"] = check_formats(data.formats)
    if data.horizon_days is not None:
        most = settings.max_horizon_days
        if not 1 <= data.horizon_days <= most:
            raise InputError(
                f"horizon {data.horizon_days} days is out of range: plan 1 to {most} days ahead"
            )
        fields["horizon_days"] = data.horizon_days
    return fields


def describe_rule(rule: SlotRule) -> str:
    """One line for people: "mon,wed 09:00,18:30" or "FREQ=… from 2026-12-01T09:00"."""
    if rule.rrule:
        return f"{rule.rrule} from {rule.dtstart}"
    days = ",".join(_DAY_ABBR[d] for d in rule.days_of_week)
    return f"{days} {','.join(rule.times)}"
