"""Checking slot rules and calendar settings as people give them, before any row changes.

Each check raises ``InputError`` with one line naming the field, the value and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models import Influencer, SlotRule
from pipeline.captions import MAX_CAPTION_CHARS, merge_hashtags
from pipeline.errors import InputError
from pipeline.generators.prompts import ENVIRONMENTS, SCENES
from pipeline.planning.caption_limits import check_rule_captions
from pipeline.planning.times import first_occurrence, parse_days, parse_rrule, parse_times, zone
from pipeline.planning.walls import ANCHOR_LAG, anchor_before
from pipeline.settings import Settings
from pipeline.validation import (
    MAX_PROMPT_CHARS,
    check_formats,
    check_lead_minutes,
    check_text,
    for_field,
    shown,
)

__all__ = [
    "MAX_ROTATION",
    "MAX_RRULE_CHARS",
    "START_YEARS",
    "CalendarSettingsIn",
    "RuleIn",
    "calendar_fields",
    "describe_rule",
    "rule_fields",
]

_DAY_ABBR = {1: "mon", 2: "tue", 3: "wed", 4: "thu", 5: "fri", 6: "sat", 7: "sun"}
MAX_ROTATION = 50  # items in one rotation list: more is a mistake, and each is tried at the door
MAX_RRULE_CHARS = 500
# How far a start may lie from today: a start further back would make every check walk years of
# slots, and one further ahead plans nothing anyone will see.
START_YEARS = 5


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


def rule_fields(
    data: RuleIn, *, influencer: Influencer, current: SlotRule | None, now: datetime
) -> dict[str, Any]:
    """The SlotRule columns ``data`` sets, every one checked; ``current`` is the rule edited.

    Captions are checked on the rule as it will be (the given fields over ``current``'s), at
    the longest each can be once filled in.
    """
    tz = zone(influencer.timezone)
    fields = _schedule_fields(data, current, tz, now)
    fields |= _rotation_fields(data)
    fields |= _caption_fields(data)
    _check_captions(influencer, fields, current)
    return fields


def _schedule_fields(
    data: RuleIn, current: SlotRule | None, tz: ZoneInfo, now: datetime
) -> dict[str, Any]:
    simple = data.days is not None or data.times is not None
    if data.rrule is not None and simple:
        raise InputError(
            "a rule has days and times or an rrule, not both: leave one out", field="rrule"
        )
    if data.rrule is not None:
        start = data.start if data.start is not None else current.dtstart if current else None
        return _rrule_fields(data.rrule, start, tz, now)
    if data.start is not None:
        if current is None or not current.rrule:
            raise InputError(
                f"start {shown(data.start)} applies to rrule rules only: leave it out",
                field="start",
            )
        return _rrule_fields(current.rrule, data.start, tz, now)
    if not simple and current is not None:
        return {}
    was_simple = current is not None and not current.rrule
    with for_field("days"):
        days = parse_days(data.days) if data.days is not None else None
    with for_field("times"):
        times = parse_times(data.times) if data.times is not None else None
    days = days or (current.days_of_week if current and was_simple else None)
    times = times or (current.times if current and was_simple else None)
    if not days or not times:
        raise InputError(
            "a rule needs days and times (e.g. --days mon,wed --times 09:00) or an rrule",
            field="times" if days else "days",
        )
    return {
        "days_of_week": days,
        "times": times,
        "rrule": None,
        "dtstart": None,
        "anchor_at": None,
        "anchor_n": None,
    }


def _rrule_fields(text: str, start: str | None, tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    with for_field("start"):
        dtstart = _parse_start(start, tz, now)
    if len(text) > MAX_RRULE_CHARS:
        raise InputError(
            f"rrule {shown(text)} is too long: use at most {MAX_RRULE_CHARS} characters",
            field="rrule",
        )
    with for_field("rrule"):
        rule = parse_rrule(text, dtstart, tz)
    if first_occurrence(rule, after=now, tz=tz) is None:
        local = now.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        raise InputError(
            f"rrule {text!r} has no occurrence after {local} ({tz.key}): "
            "check its COUNT, UNTIL, start and BY… parts",
            field="rrule",
        )
    fields: dict[str, Any] = {
        "rrule": text.strip(),
        "dtstart": dtstart.isoformat(timespec="minutes"),
        "days_of_week": [],
        "times": [],
    }
    # Counting from an anchor near today keeps every later expansion cheap, however old the start.
    draft = SlotRule(rrule=fields["rrule"], dtstart=fields["dtstart"])
    before = now.astimezone(tz).replace(tzinfo=None) - ANCHOR_LAG
    with for_field("start"):
        anchor = anchor_before(draft, tz, before)
    fields["anchor_at"], fields["anchor_n"] = anchor or (None, None)
    return fields


def _parse_start(text: str | None, tz: ZoneInfo, now: datetime) -> datetime:
    """The rule's DTSTART as a local wall time; by default today's local midnight."""
    today = now.astimezone(tz).date()
    if text is None or not text.strip():
        return datetime.combine(today, datetime.min.time())
    try:
        start = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"malformed start {shown(text)}: use a local 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM'"
        ) from None
    if start.tzinfo is not None or start.second or start.microsecond:
        raise InputError(
            f"start {text!r} must be a local wall time in whole minutes, without an offset"
        )
    reach = timedelta(days=365 * START_YEARS + 1)
    if not today - reach <= start.date() <= today + reach:
        raise InputError(
            f"start {text!r} is more than {START_YEARS} years from today ({today}): "
            "give a start within that (a date on the same weekday and time keeps the rhythm)"
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
        raise InputError(
            f"empty rotation: {name} lists nothing; name at least one or leave it out", field=name
        )
    if len(items) > MAX_ROTATION:
        raise InputError(
            f"{name} lists {len(items)} items: rotate at most {MAX_ROTATION}", field=name
        )
    for item in items:
        if presets is not None and item not in presets:
            raise InputError(
                f"unknown {singular} {shown(item)} in {name}: choose from {', '.join(presets)}",
                field=name,
            )
        check_text(singular, item, field=name, most=MAX_PROMPT_CHARS)
        if items.count(item) > 1:
            raise InputError(f"{name} lists {item!r} twice: name each {singular} once", field=name)
    return items


def _caption_fields(data: RuleIn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if data.caption_templates is not None:
        templates = [text for text in data.caption_templates if text.strip()]
        if not templates:
            raise InputError(
                "empty rotation: caption templates list nothing; give one or leave out",
                field="caption_templates",
            )
        if len(templates) > MAX_ROTATION:
            raise InputError(
                f"{len(templates)} caption templates: rotate at most {MAX_ROTATION}",
                field="caption_templates",
            )
        for template in templates:
            check_text("caption template", template, field="caption_templates", most=_LONGEST)
        fields["caption_templates"] = templates
    if data.caption_text is not None:
        fields["caption_text"] = data.caption_text
    if data.hashtags is not None:
        fields["hashtags"] = list(data.hashtags)
    return fields


_LONGEST = MAX_CAPTION_CHARS
# What a rule has when neither it nor the input sets a column.
_RULE_DEFAULTS: dict[str, Any] = {
    "caption_text": "",
    "caption_templates": [],
    "scenes": [],
    "environments": [],
    "outfits": [],
    "hashtags": [],
}


def _check_captions(
    influencer: Influencer, fields: dict[str, Any], current: SlotRule | None
) -> None:
    """Every caption the rule, as it will be, can produce; hashtags kept in their merged form."""
    rule = {
        name: fields.get(name, getattr(current, name) if current else default)
        for name, default in _RULE_DEFAULTS.items()
    }
    check_rule_captions(
        influencer=influencer,
        caption_text=rule["caption_text"],
        templates=rule["caption_templates"],
        scenes=rule["scenes"],
        environments=rule["environments"],
        outfits=rule["outfits"],
        hashtags=rule["hashtags"],
    )
    if "hashtags" in fields:
        fields["hashtags"] = list(merge_hashtags(fields["hashtags"]))


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
                f"horizon {data.horizon_days} days is out of range: plan 1 to {most} days ahead",
                field="horizon_days",
            )
        fields["horizon_days"] = data.horizon_days
    return fields


def describe_rule(rule: SlotRule) -> str:
    """One line for people: "mon,wed 09:00,18:30" or "FREQ=… from 2026-12-01T09:00"."""
    if rule.rrule:
        return f"{rule.rrule} from {rule.dtstart}"
    days = ",".join(_DAY_ABBR[d] for d in rule.days_of_week)
    return f"{days} {','.join(rule.times)}"
