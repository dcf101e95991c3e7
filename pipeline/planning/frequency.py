"""How often an influencer posts: each rule at most hourly, a daily cap per influencer, and no
rule that only repeats the slots of rules already there.

Checked at the door on the rules as they would be after the change, before any row changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ContentCalendar, Influencer, Post, PostStatus, SlotRule
from pipeline.errors import InputError
from pipeline.planning.times import resolve_local, zone
from pipeline.planning.walls import rule_walls as _rule_walls
from pipeline.settings import Settings

__all__ = [
    "CAP_DAYS",
    "MAX_POSTS_PER_DAY",
    "MIN_GAP",
    "SCHEDULE_COLUMNS",
    "check_daily_cap",
    "check_day_has_room",
    "check_rule_frequency",
    "daily_cap",
    "draft_of",
    "influencer_rules",
    "rule_walls",
    "take_turns",
]

MIN_GAP = timedelta(hours=1)
# The most any cap may allow: Instagram's highest published limit of API posts a day.
MAX_POSTS_PER_DAY = 100
CAP_DAYS = 366  # a year holds every weekly, monthly and yearly peak
_SPACING_DAYS = 731  # two years: month ends, leap days and year ends all come round
_OVERLAP_DAYS = 60


def rule_walls(rule: SlotRule, tz: ZoneInfo, first: date, last: date) -> list[tuple[datetime, int]]:
    """A rule's walls; a stored rule that cannot be read is named, with the way to fix it."""
    try:
        return list(_rule_walls(rule, tz, first, last))
    except Exception as exc:  # a stored rule an older version let in: any failure is its own
        if rule.id is None:
            raise
        raise InputError(
            f"rule {rule.id} cannot be planned ({str(exc).splitlines()[0][:300]}): fix it first "
            f"with `ryla calendar edit` and --rule {rule.id}",
            field="rule_id",
        ) from None


# The columns that decide when a rule posts: a change to any of them is checked here.
SCHEDULE_COLUMNS = frozenset({"days_of_week", "times", "rrule", "dtstart"})
_RULE_COLUMNS = (
    *SCHEDULE_COLUMNS,
    *("id", "calendar_id", "anchor_at", "anchor_n", "scenes", "environments", "outfits"),
    *("caption_text", "caption_templates", "hashtags"),
)


def draft_of(rule: SlotRule, changes: dict[str, Any]) -> SlotRule:
    """A detached copy of ``rule`` with ``changes``: checked before the stored rule changes."""
    return SlotRule(**{name: getattr(rule, name) for name in _RULE_COLUMNS} | changes)


def daily_cap(influencer: Influencer, settings: Settings) -> int:
    return influencer.max_posts_per_day or settings.max_posts_per_day


def influencer_rules(session: Session, influencer_id: int) -> list[tuple[SlotRule, str]]:
    """Every rule of every calendar of an influencer (paused ones too), with its calendar's name."""
    rows = session.execute(
        select(SlotRule, ContentCalendar.name)
        .join(ContentCalendar, ContentCalendar.id == SlotRule.calendar_id)
        .where(ContentCalendar.influencer_id == influencer_id)
        .order_by(SlotRule.id)
    )
    return [(rule, name) for rule, name in rows]


def check_rule_frequency(
    session: Session,
    *,
    influencer: Influencer,
    rule: SlotRule,
    replacing: int | None,
    settings: Settings,
    now: datetime,
) -> None:
    """A new or changed rule (``replacing`` the rule of that id): spacing, overlap, daily cap."""
    tz = zone(influencer.timezone)
    _check_spacing(rule, tz, now)
    others = [
        (r, name) for r, name in influencer_rules(session, influencer.id) if r.id != replacing
    ]
    _check_adds_slots(rule, others, tz, now)
    rules = [rule, *(r for r, _ in others)]
    cap = daily_cap(influencer, settings)
    check_daily_cap(session, influencer=influencer, rules=rules, cap=cap, now=now)


def _check_spacing(rule: SlotRule, tz: ZoneInfo, now: datetime) -> None:
    first = now.astimezone(tz).date()
    previous: datetime | None = None
    for wall, _ in sorted(rule_walls(rule, tz, first, first + timedelta(days=_SPACING_DAYS))):
        if previous is not None and wall - previous < MIN_GAP:
            minutes = int((wall - previous).total_seconds() // 60)
            what = f"rrule {rule.rrule!r}" if rule.rrule else "the rule"
            raise InputError(
                f"{what} posts at {previous:%Y-%m-%d %H:%M} and {wall:%H:%M}, {minutes} minutes "
                "apart: posts come at most hourly, so leave an hour between its times",
                field="rrule" if rule.rrule else "times",
            )
        previous = wall


def _instants(rule: SlotRule, tz: ZoneInfo, now: datetime) -> set[datetime]:
    first = now.astimezone(tz).date()
    last = first + timedelta(days=_OVERLAP_DAYS)
    instants = (resolve_local(w.date(), w.time(), tz) for w, _ in rule_walls(rule, tz, first, last))
    return {at for at in instants if at >= now}


def _check_adds_slots(
    rule: SlotRule, others: Sequence[tuple[SlotRule, str]], tz: ZoneInfo, now: datetime
) -> None:
    """A rule whose every coming slot another rule already posts at would add nothing."""
    mine = _instants(rule, tz, now)
    if not mine:
        return
    covering, covered = [], set()
    for other, calendar in others:
        shared = _instants(other, tz, now) & mine
        if shared:
            covering.append(f"rule {other.id} of calendar {calendar!r}")
            covered |= shared
    if mine <= covered:
        raise InputError(
            f"this rule adds no slot: {' and '.join(covering)} already post at every one of its "
            f"times in the next {_OVERLAP_DAYS} days; change that rule with `ryla calendar edit`",
            field="rrule" if rule.rrule else "times",
        )


def check_daily_cap(
    session: Session,
    *,
    influencer: Influencer,
    rules: Iterable[SlotRule],
    cap: int,
    now: datetime,
    days: int = CAP_DAYS,
) -> None:
    """No local day in the coming ``days`` holds more than ``cap`` posts (rules and one-offs)."""
    take_turns(session, influencer)
    tz = zone(influencer.timezone)
    first = now.astimezone(tz).date()
    walls = _walls_by_day(session, influencer, rules, tz, first, first + timedelta(days=days))
    if not walls:
        return
    day, busiest = max(walls.items(), key=lambda item: (len(item[1]), -item[0].toordinal()))
    if len(busiest) > cap:
        raise _over_cap(influencer, day, len(busiest), cap, tz)


def take_turns(session: Session, influencer: Influencer) -> None:
    """Cap checks of one influencer run one at a time, each until its transaction ends: two
    adds at once could otherwise both count the day before either post exists (PostgreSQL;
    SQLite's writers take turns already)."""
    # FOR NO KEY UPDATE: it queues other cap checks, not the inserts whose foreign keys point
    # at the row (the beat's planning, a rival add), which take a key-share lock.
    session.execute(
        select(Influencer.id).where(Influencer.id == influencer.id).with_for_update(key_share=True)
    )


def check_day_has_room(
    session: Session, *, influencer: Influencer, publish_at: datetime, cap: int
) -> None:
    """One more post on ``publish_at``'s local day stays within the cap."""
    take_turns(session, influencer)
    tz = zone(influencer.timezone)
    day = publish_at.astimezone(tz).date()
    rules = [rule for rule, _ in influencer_rules(session, influencer.id)]
    walls = _walls_by_day(session, influencer, rules, tz, day, day).get(day, set())
    walls.add(publish_at.astimezone(tz).replace(tzinfo=None))
    if len(walls) > cap:
        raise _over_cap(influencer, day, len(walls), cap, tz)


def _walls_by_day(
    session: Session,
    influencer: Influencer,
    rules: Iterable[SlotRule],
    tz: ZoneInfo,
    first: date,
    last: date,
) -> dict[date, set[datetime]]:
    """Local wall times of the rules' slots and of the one-off posts, by local date."""
    walls: dict[date, set[datetime]] = defaultdict(set)
    for rule in rules:
        for wall, _ in rule_walls(rule, tz, first, last):
            walls[wall.date()].add(wall)
    for at in _one_offs(session, influencer.id, tz, first, last):
        walls[at.date()].add(at)
    return walls


def _one_offs(
    session: Session, influencer_id: int, tz: ZoneInfo, first: date, last: date
) -> list[datetime]:
    if not influencer_id:  # an influencer being created has none yet
        return []
    since = resolve_local(first - timedelta(days=1), datetime.min.time(), tz)
    until = resolve_local(last + timedelta(days=2), datetime.min.time(), tz)
    found = session.scalars(
        select(Post.publish_at).where(
            Post.influencer_id == influencer_id,
            Post.slot_key.is_(None),
            Post.status != PostStatus.CANCELLED,
            Post.publish_at >= since,
            Post.publish_at < until,
        )
    )
    return [at.astimezone(tz).replace(tzinfo=None) for at in found]


def _over_cap(influencer: Influencer, day: date, count: int, cap: int, tz: ZoneInfo) -> InputError:
    return InputError(
        f"{influencer.handle} would post {count} times on {day.isoformat()} ({tz.key}), over "
        f"the daily cap of {cap}: post less often, or raise the cap with `ryla influencer edit "
        f"{influencer.handle} --max-posts-per-day N` (at most {MAX_POSTS_PER_DAY})"
    )
