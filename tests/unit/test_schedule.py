"""Calendar expansion: local times in the influencer's zone, once per slot, the same plan."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models import ContentCalendar, Post
from pipeline.catalog import CalendarIn, create_calendar
from pipeline.schedule import (
    ScheduleError,
    expand_due_calendars,
    parse_days,
    parse_times,
    parse_when,
    resolve_local,
)
from tests.conftest import NOW

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_local_time_that_does_not_exist_moves_to_the_first_valid_instant() -> None:
    # 2026-03-29: Berlin clocks jump from 02:00 to 03:00 (01:00 UTC).
    assert resolve_local(date(2026, 3, 29), time(2, 30), BERLIN) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )


def test_a_local_time_that_happens_twice_is_the_first_one() -> None:
    # 2026-10-25: 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
    assert resolve_local(date(2026, 10, 25), time(2, 30), BERLIN) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


def test_new_york_and_lord_howe_transitions() -> None:
    ny = resolve_local(date(2026, 3, 8), time(2, 15), ZoneInfo("America/New_York"))
    assert ny == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    # Lord Howe moves only 30 minutes: 02:00 -> 02:30 on 2026-10-04.
    lh = resolve_local(date(2026, 10, 4), time(2, 10), ZoneInfo("Australia/Lord_Howe"))
    assert lh.astimezone(ZoneInfo("Australia/Lord_Howe")).time() == time(2, 30)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon,wed,fri", [1, 3, 5]),
        ("weekdays", [1, 2, 3, 4, 5]),
        ("Sunday,sat", [6, 7]),
        ("daily", list(range(1, 8))),
    ],
)
def test_days_are_read_by_name_or_group(text: str, days: list[int]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("bad", ["24:00", "9", "09:60", "noon", "9:00pm"])
def test_a_malformed_time_is_named_in_the_error(bad: str) -> None:
    with pytest.raises(ScheduleError, match=f"malformed time '{bad}'"):
        parse_times(bad)


def test_when_accepts_now_relative_local_and_offset_times() -> None:
    assert parse_when("now", BERLIN, NOW) == NOW
    assert parse_when("+90m", BERLIN, NOW) == NOW + timedelta(minutes=90)
    assert parse_when("2026-11-26 18:00", BERLIN, NOW) == datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    assert parse_when("2026-11-26T18:00+00:00", BERLIN, NOW) == datetime(
        2026, 11, 26, 18, 0, tzinfo=UTC
    )
    with pytest.raises(ScheduleError, match="malformed time"):
        parse_when("tomorrow-ish", BERLIN, NOW)


def _calendar(session: Session) -> None:
    create_calendar(
        session=session,
        handle="mia",
        data=CalendarIn(
            "main",
            "mon,wed,fri",
            "09:00,18:30",
            scenes=["beach_day", "workout", "travel"],
            environments=["beach", "urban"],
            lead_minutes=45,
        ),
    )


def test_expansion_creates_each_slot_once(session: Session, influencer_id: int) -> None:
    _calendar(session)
    created = expand_due_calendars(session, now=NOW, horizon_days=14)
    again = expand_due_calendars(session, now=NOW, horizon_days=14)
    total = session.scalar(select(func.count()).select_from(Post))
    # 2026-11-26 is a Thursday: 14 days hold 6 posting days x 2 times.
    assert (created, again, total) == (12, 0, 12)


def test_slots_are_utc_with_local_labels_and_lead_time(
    session: Session, influencer_id: int
) -> None:
    _calendar(session)
    expand_due_calendars(session, now=NOW, horizon_days=14)
    first = session.scalars(select(Post).order_by(Post.publish_at)).first()
    assert first is not None
    assert first.publish_at == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # Fri 09:00 CET
    assert first.local_publish_time == "2026-11-27 09:00 Europe/Berlin"
    assert first.publish_at - first.generate_at == timedelta(minutes=45)


def test_rotation_is_the_same_plan_on_every_expansion(session: Session, influencer_id: int) -> None:
    _calendar(session)
    expand_due_calendars(session, now=NOW, horizon_days=14)
    plan = session.execute(select(Post.slot_key, Post.scene, Post.environment)).all()
    session.execute(delete(Post))
    session.execute(update(ContentCalendar).values(planned_until=None))
    expand_due_calendars(session, now=NOW, horizon_days=14)
    assert session.execute(select(Post.slot_key, Post.scene, Post.environment)).all() == plan
    assert len({(s, e) for _, s, e in plan}) > 3  # it really rotates
