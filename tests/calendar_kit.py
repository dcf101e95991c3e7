"""Helpers for calendar tests: an influencer in any zone, a calendar from a rule, plan queries.

Shared by the unit tests of schedule, calendars, holds, import and the calendar CLI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ContentCalendar, Post
from pipeline.planning.calendars import add_rule
from pipeline.planning.influencers import (
    CharacterIn,
    InfluencerIn,
    create_character,
    create_influencer,
)
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.settings import Settings
from tests.conftest import NOW


def make_influencer(session: Session, handle: str, tz: str, **kwargs: Any) -> int:
    data = InfluencerIn(handle=handle, display_name=handle.title(), timezone=tz, **kwargs)
    influencer = create_influencer(session=session, data=data)
    create_character(session=session, handle=handle, data=CharacterIn(name="Face", seed=3))
    return influencer.id


def make_calendar(
    session: Session,
    settings: Settings,
    handle: str = "mia",
    name: str = "main",
    *,
    now: datetime = NOW,
    lead_minutes: int | None = None,
    horizon_days: int | None = None,
    **rule: Any,
) -> ContentCalendar:
    calendar, _ = add_rule(
        session=session,
        handle=handle,
        calendar_name=name,
        rule=RuleIn(**rule),
        settings_in=CalendarSettingsIn(lead_minutes=lead_minutes, horizon_days=horizon_days),
        character=None,
        settings=settings,
        now=now,
    )
    return calendar


def plan(session: Session, *columns: Any) -> list[tuple[Any, ...]]:
    """The posts in publish order, as tuples of the given columns."""
    rows = session.execute(select(*columns).order_by(Post.publish_at, Post.id))
    return [tuple(row) for row in rows]
