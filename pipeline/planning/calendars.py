"""Changing plans: add and edit slot rules, pause and resume, delete calendars, list them.

Inputs are checked before any row changes; an edit re-plans only future posts no worker claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, selectinload

from models import (
    ContentCalendar,
    Influencer,
    Post,
    PostEvent,
    PostStatus,
    SlotRule,
)
from pipeline.errors import InputError, NotFound, RuleBroken
from pipeline.planning.expand import horizon_of, mark_planned, slot_rows
from pipeline.planning.frequency import SCHEDULE_COLUMNS, check_rule_frequency, draft_of
from pipeline.planning.influencers import get_influencer, pick_character
from pipeline.planning.rules import (
    CalendarSettingsIn,
    RuleIn,
    calendar_fields,
    describe_rule,
    rule_fields,
)
from pipeline.planning.slots import insert_slots
from pipeline.planning.times import local_label, zone
from pipeline.settings import Settings
from pipeline.steps.moves import move
from pipeline.validation import check_name, inserted_once

__all__ = [
    "CalendarSummary",
    "Replan",
    "add_rule",
    "edit_calendar",
    "get_calendar",
    "list_calendars",
    "replan",
]

S = PostStatus


@dataclass(frozen=True)
class Replan:
    """What re-planning did to a calendar's future posts."""

    updated: int = 0
    added: int = 0
    removed: int = 0
    kept: int = 0  # already claimed by a worker (or further along): left as they are


def get_calendar(session: Session, handle: str, name: str) -> tuple[Influencer, ContentCalendar]:
    """The calendar, row-locked: a beat expanding it finishes first, and then skips it."""
    influencer = get_influencer(session, handle)
    calendar = session.scalars(
        select(ContentCalendar)
        .where(ContentCalendar.influencer_id == influencer.id, ContentCalendar.name == name)
        .options(selectinload(ContentCalendar.rules))
        .with_for_update(of=ContentCalendar)
        .execution_options(populate_existing=True)
    ).first()
    if calendar is None:
        raise NotFound(
            f"unknown calendar {name!r} for {handle!r}: list them with `ryla calendar list`",
            field="name",
        )
    return influencer, calendar


def edit_calendar(
    *,
    session: Session,
    handle: str,
    name: str,
    rule: RuleIn,
    settings_in: CalendarSettingsIn,
    rule_id: int | None,
    settings: Settings,
    now: datetime,
) -> Replan:
    """Change a rule and/or the calendar's settings, then re-plan its unclaimed future posts."""
    influencer, calendar = get_calendar(session, handle, name)
    target = _pick_rule(calendar, rule_id)
    changes = rule_fields(rule, influencer=influencer, current=target, now=now)
    calendar_changes = calendar_fields(settings_in, settings=settings)
    if not changes and not calendar_changes:
        raise InputError("nothing to change: give at least one option, e.g. --times 10:00")
    if SCHEDULE_COLUMNS.intersection(changes):
        draft = draft_of(target, changes)
        check_rule_frequency(
            session,
            influencer=influencer,
            rule=draft,
            replacing=target.id,
            settings=settings,
            now=now,
        )
    _assign(target, changes)
    _assign(calendar, calendar_changes)
    calendar.expand_at = None  # a longer horizon is planned at the next tick
    session.flush()
    if calendar.broken_reason is not None:
        # Cleared only when every rule plans again, over the calendar's whole horizon.
        end = now + horizon_of(calendar, settings.horizon_days)
        _plannable(
            calendar,
            influencer,
            lambda: slot_rows(calendar, influencer, calendar.rules, start=now, end=end),
        )
        mark_planned(calendar)
    return replan(session, calendar, influencer, calendar.rules, now=now)


def _plannable(
    calendar: ContentCalendar, influencer: Influencer, plan: Callable[[], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The rows ``plan`` makes; a stored rule that cannot be planned is named with its fix."""
    try:
        return plan()
    except RuleBroken as exc:
        option, field = (f"--rule {exc.rule_id}", "rule_id")
        if exc.rule_id is None:
            option, field = "--format …", "formats"
        raise InputError(
            f"calendar {calendar.name!r} cannot be planned: {exc}; fix it with "
            f"`ryla calendar edit {influencer.handle} {calendar.name} {option}`",
            field=field,
        ) from None


def _pick_rule(calendar: ContentCalendar, rule_id: int | None) -> SlotRule:
    ids = ", ".join(str(r.id) for r in calendar.rules)
    if rule_id is None:
        if len(calendar.rules) == 1:
            return calendar.rules[0]
        raise InputError(
            f"calendar {calendar.name!r} has {len(calendar.rules)} rules ({ids}): "
            "pick one with --rule"
        )
    for rule in calendar.rules:
        if rule.id == rule_id:
            return rule
    raise InputError(f"calendar {calendar.name!r} has no rule {rule_id}: its rules are {ids}")


def _assign(row: object, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(row, name, value)


def add_rule(
    *,
    session: Session,
    handle: str,
    calendar_name: str,
    rule: RuleIn,
    settings_in: CalendarSettingsIn,
    character: str | None,
    settings: Settings,
    now: datetime,
) -> tuple[ContentCalendar, bool]:
    """Add a rule to a calendar, creating the calendar first if it does not exist yet."""
    influencer = get_influencer(session, handle)
    fields = rule_fields(rule, influencer=influencer, current=None, now=now)
    calendar_changes = calendar_fields(settings_in, settings=settings)
    calendar = session.scalars(
        select(ContentCalendar)
        .where(
            ContentCalendar.influencer_id == influencer.id, ContentCalendar.name == calendar_name
        )
        .with_for_update()
    ).first()
    created = calendar is None
    if calendar is None:
        calendar_name = check_name("calendar name", calendar_name, field="calendar_name")
        chosen = pick_character(session, influencer, character)
    else:
        _same_settings(calendar, calendar_changes)
        _not_a_copy(calendar, fields)
    new_rule = SlotRule(**{"days_of_week": [], "times": [], **fields})
    check_rule_frequency(
        session, influencer=influencer, rule=new_rule, replacing=None, settings=settings, now=now
    )
    if calendar is None:
        calendar = ContentCalendar(
            influencer_id=influencer.id, character_id=chosen.id, name=calendar_name
        )
        _assign(calendar, calendar_changes)
        fix = "run the command again to add the rule to it"
        with inserted_once(session, f"calendar {calendar_name!r} of {handle!r}", fix):
            session.add(calendar)
    calendar.rules.append(new_rule)
    session.flush()
    if not created:
        replan(session, calendar, influencer, [new_rule], now=now)
    return calendar, created


def _same_settings(calendar: ContentCalendar, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if getattr(calendar, name) != value:
            raise InputError(
                f"calendar {calendar.name!r} already has {name} {getattr(calendar, name)!r}, "
                f"not {value!r}: change it with `ryla calendar edit`"
            )


def _not_a_copy(calendar: ContentCalendar, fields: dict[str, Any]) -> None:
    # The same schedule twice in one calendar would post every slot twice.
    keys = ("days_of_week", "times", "rrule", "dtstart")
    for rule in calendar.rules:
        if all(getattr(rule, k) == fields.get(k, getattr(rule, k)) for k in keys):
            raise InputError(
                f"calendar {calendar.name!r} already has this schedule (rule {rule.id}): "
                "change that rule with `ryla calendar edit` instead"
            )


def replan(
    session: Session,
    calendar: ContentCalendar,
    influencer: Influencer,
    rules: Sequence[SlotRule],
    *,
    now: datetime,
) -> Replan:
    """Bring the rules' future posts in line with the rules, up to the calendar's plan end.

    Posts still planned and unclaimed are updated in place (same slot), removed (slot gone)
    or added (new slot); anything a worker holds or has moved further is left alone.
    """
    # Row locks, skipping posts a beat is claiming right now: those count as claimed.
    future = list(
        session.scalars(
            select(Post)
            .where(
                Post.calendar_id == calendar.id, _of_rules(calendar, rules), Post.publish_at > now
            )
            .with_for_update(skip_locked=True)
        )
    )
    open_ = [p for p in future if p.status is S.PLANNED and p.lease_owner is None]
    end = calendar.planned_until
    rows: list[dict[str, Any]] = []
    if end and end > now:
        rows = _plannable(
            calendar,
            influencer,
            lambda: slot_rows(calendar, influencer, rules, start=now, end=end, now=now),
        )
    fresh = {row["slot_key"]: row for row in rows}
    updated = removed = 0
    with_history = _with_history(session, [p.id for p in open_])
    for post in open_:
        row = fresh.pop(post.slot_key or "", None)
        if row is not None:
            updated += _update_post(post, row)
        else:
            removed += 1
            _drop(session, post, keep=post.id in with_history)
    added = insert_slots(session, list(fresh.values()))
    session.flush()
    kept = sum(1 for p in future if p not in open_ and p.status not in (S.CANCELLED, S.PUBLISHED))
    return Replan(updated=updated, added=added, removed=removed, kept=kept)


def _of_rules(calendar: ContentCalendar, rules: Sequence[SlotRule]) -> ColumnElement[bool]:
    prefixes = [f"{calendar.id}:{rule.id}:" for rule in rules]
    return or_(*(Post.slot_key.startswith(p, autoescape=True) for p in prefixes))


def _with_history(session: Session, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    stmt = select(PostEvent.post_id).where(PostEvent.post_id.in_(ids)).distinct()
    return set(session.scalars(stmt))


_PLAN_COLUMNS = (
    "publish_at",
    "generate_at",
    "local_publish_time",
    "scene",
    "environment",
    "outfit",
    "caption_text",
    "hashtags",
    "formats",
)


def _update_post(post: Post, row: dict[str, Any]) -> int:
    changed = [name for name in _PLAN_COLUMNS if getattr(post, name) != row[name]]
    _assign(post, {name: row[name] for name in changed})
    return 1 if changed else 0


def _drop(session: Session, post: Post, *, keep: bool) -> None:
    """A slot the rule no longer has: a bare plan row goes; one with a history is cancelled."""
    if not keep:
        session.delete(post)
        return
    # The slot key is released so that a later edit can bring the slot back.
    move(
        session,
        post.id,
        expected=S.PLANNED,
        to=S.CANCELLED,
        actor="replan",
        detail="re-planned: the rule no longer has this slot",
        values={"slot_key": None},
    )


@dataclass(frozen=True)
class CalendarSummary:
    handle: str
    name: str
    state: str  # active | paused | held (the influencer is paused)
    rules: list[str]
    planned: int
    next_post: str
    broken: str = ""  # why the beat cannot plan it, and since when; "" when it can


_UPCOMING = [S.PLANNED, S.GENERATING, S.GENERATED, S.RENDERING, S.READY, S.APPROVED]


def list_calendars(session: Session, *, handle: str | None, now: datetime) -> list[CalendarSummary]:
    """Every calendar (or one influencer's) with its rules, planned posts and the next one."""
    stmt = (
        select(ContentCalendar, Influencer)
        .join(Influencer, Influencer.id == ContentCalendar.influencer_id)
        .order_by(Influencer.handle, ContentCalendar.name)
        .options(selectinload(ContentCalendar.rules))
    )
    if handle is not None:
        stmt = stmt.where(Influencer.id == get_influencer(session, handle).id)
    planned = dict(
        session.execute(
            select(Post.calendar_id, func.count())
            .where(Post.status == S.PLANNED)
            .group_by(Post.calendar_id)
        ).all()
    )
    upcoming = select(Post.calendar_id, func.min(Post.publish_at)).where(
        Post.publish_at >= now, Post.status.in_(_UPCOMING)
    )
    following = dict(session.execute(upcoming.group_by(Post.calendar_id)).all())
    return [
        _summary(calendar, influencer, planned.get(calendar.id, 0), following.get(calendar.id))
        for calendar, influencer in session.execute(stmt)
    ]


def _summary(
    calendar: ContentCalendar, influencer: Influencer, planned: int, following: datetime | None
) -> CalendarSummary:
    state = "active" if calendar.active else "paused"
    if not influencer.active:
        state = "held (influencer paused)" if calendar.active else "paused"
    tz = zone(influencer.timezone)
    broken = ""
    if calendar.broken_reason is not None:
        state = "BROKEN"
        since = local_label(calendar.broken_at, tz) if calendar.broken_at else "?"
        broken = f"since {since}: {calendar.broken_reason}"
    return CalendarSummary(
        handle=influencer.handle,
        name=calendar.name,
        state=state,
        rules=[f"#{rule.id} {describe_rule(rule)}" for rule in calendar.rules],
        planned=planned,
        next_post=local_label(following, tz) if following else "-",
        broken=broken,
    )
