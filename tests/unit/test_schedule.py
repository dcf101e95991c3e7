"""Calendar expansion: local times in the influencer's zone, once per slot, the same plan."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models import ContentCalendar, Influencer, Post
from pipeline.errors import ScheduleError
from pipeline.planning.calendars import add_rule
from pipeline.planning.expand import expand_due_calendars
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.planning.times import local_label, parse_days, parse_times, parse_when, resolve_local
from pipeline.settings import Settings
from tests.calendar_kit import make_calendar, make_influencer, plan
from tests.conftest import NOW, add_influencer, add_post

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
    add_rule(
        session=session,
        handle="mia",
        calendar_name="main",
        rule=RuleIn(
            days="mon,wed,fri",
            times="09:00,18:30",
            scenes=["beach_day", "workout", "travel"],
            environments=["beach", "urban"],
        ),
        settings_in=CalendarSettingsIn(lead_minutes=45),
        character=None,
        settings=Settings(),
        now=NOW,
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
    session.execute(update(ContentCalendar).values(planned_until=None, expand_at=None))
    expand_due_calendars(session, now=NOW, horizon_days=14)
    assert session.execute(select(Post.slot_key, Post.scene, Post.environment)).all() == plan
    assert len({(s, e) for _, s, e in plan}) > 3  # it really rotates


# --- recurrence across real DST transitions --------------------------------------------------


def _daily_at(kind: str, hh: int, mm: int) -> dict[str, str]:
    if kind == "simple":
        return {"days": "daily", "times": f"{hh:02d}:{mm:02d}"}
    return {"rrule": f"FREQ=DAILY;BYHOUR={hh};BYMINUTE={mm}", "start": "2026-01-01"}


def _expand_around(
    session: Session, settings: Settings, tz: str, day: date, **rule: str
) -> list[tuple[datetime, str, str]]:
    make_influencer(session, "ana", tz)
    now = datetime.combine(day - timedelta(days=2), time(12, 0), tzinfo=UTC)
    make_calendar(session, settings, "ana", now=now, **rule)
    expand_due_calendars(session, now=now, horizon_days=4)
    rows = plan(session, Post.publish_at, Post.local_publish_time, Post.slot_key)
    return [r for r in rows if r[2].split(":", 2)[2].startswith(day.isoformat())]  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["simple", "rrule"])
@pytest.mark.parametrize(
    ("tz", "day", "wall", "expected_utc", "label"),
    [
        # Berlin 2026-03-29: 02:00 -> 03:00; 02:30 does not exist.
        ("Europe/Berlin", date(2026, 3, 29), (2, 30), datetime(2026, 3, 29, 1, 0), "03:00"),
        # New York 2026-03-08: 02:00 -> 03:00.
        ("America/New_York", date(2026, 3, 8), (2, 15), datetime(2026, 3, 8, 7, 0), "03:00"),
        # Lord Howe 2026-10-04: 02:00 -> 02:30, a 30-minute jump.
        (
            "Australia/Lord_Howe",
            date(2026, 10, 4),
            (2, 10),
            datetime(2026, 10, 3, 15, 30),
            "02:30",
        ),
    ],
)
def test_a_slot_in_the_spring_gap_publishes_at_the_first_valid_instant(
    session: Session,
    settings: Settings,
    kind: str,
    tz: str,
    day: date,
    wall: tuple[int, int],
    expected_utc: datetime,
    label: str,
) -> None:
    (slot,) = _expand_around(session, settings, tz, day, **_daily_at(kind, *wall))
    assert slot[0] == expected_utc.replace(tzinfo=UTC)
    assert slot[1] == f"{day.isoformat()} {label} {tz}"  # the wall time people will see


@pytest.mark.parametrize("kind", ["simple", "rrule"])
@pytest.mark.parametrize(
    ("tz", "day", "wall", "first_utc"),
    [
        # Berlin 2026-10-25: 02:30 happens at 00:30 UTC (CEST) and at 01:30 UTC (CET).
        ("Europe/Berlin", date(2026, 10, 25), (2, 30), datetime(2026, 10, 25, 0, 30)),
        # New York 2026-11-01: 01:30 EDT (05:30 UTC), then 01:30 EST.
        ("America/New_York", date(2026, 11, 1), (1, 30), datetime(2026, 11, 1, 5, 30)),
        # Lord Howe 2026-04-05: 02:00 -> 01:30, so 01:45 happens at +11:00 and at +10:30.
        ("Australia/Lord_Howe", date(2026, 4, 5), (1, 45), datetime(2026, 4, 4, 14, 45)),
    ],
)
def test_a_slot_in_the_repeated_hour_is_published_once_at_the_first(
    session: Session,
    settings: Settings,
    kind: str,
    tz: str,
    day: date,
    wall: tuple[int, int],
    first_utc: datetime,
) -> None:
    slots = _expand_around(session, settings, tz, day, **_daily_at(kind, *wall))
    assert [s[0] for s in slots] == [first_utc.replace(tzinfo=UTC)]


def test_an_hourly_rrule_keeps_wall_clock_hours_through_fall_back(
    session: Session, settings: Settings
) -> None:
    slots = _expand_around(
        session,
        settings,
        "Europe/Berlin",
        date(2026, 10, 25),
        rrule="FREQ=HOURLY;BYHOUR=1,2,3;BYMINUTE=0",
        start="2026-10-01",
    )
    assert [s[0].strftime("%H:%M") for s in slots] == ["23:00", "00:00", "02:00"]  # UTC
    assert [s[1][11:16] for s in slots] == ["01:00", "02:00", "03:00"]  # local, once each


def test_two_wall_times_inside_one_gap_make_one_post(session: Session, settings: Settings) -> None:
    # Troll (Antarctica) jumps two hours, 01:00 -> 03:00: room for two times an hour apart.
    slots = _expand_around(
        session, settings, "Antarctica/Troll", date(2026, 3, 29), days="daily", times="01:15,02:30"
    )
    assert [s[0] for s in slots] == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]


def test_an_until_in_utc_ends_the_rule(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    make_calendar(
        session,
        settings,
        "mia",
        rrule="FREQ=DAILY;BYHOUR=9;UNTIL=20261129T080000Z",  # 09:00 CET = 08:00 UTC
        start="2026-11-20",
    )
    expand_due_calendars(session, now=NOW, horizon_days=14)
    assert [r[0].day for r in plan(session, Post.publish_at)] == [27, 28, 29]


def test_an_rrule_plan_counts_from_its_start_and_repeats_exactly(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    make_calendar(
        session,
        settings,
        rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SA;BYHOUR=18;BYMINUTE=30",
        start="2026-11-03",  # a Tuesday: every other week from that one
        scenes=["beach_day", "workout", "travel"],
    )
    assert expand_due_calendars(session, now=NOW, horizon_days=28) == 4
    rows = plan(session, Post.publish_at, Post.scene)
    assert [r[0].date().isoformat() for r in rows] == [
        "2026-12-01",
        "2026-12-05",
        "2026-12-15",
        "2026-12-19",
    ]
    # Slots 0..3 fell on 11-03, 11-07, 11-17, 11-21: the rotation goes on from slot 4.
    assert [r[1] for r in rows] == ["workout", "travel", "beach_day", "workout"]


def test_the_beat_expands_at_most_a_batch_of_calendars_per_tick(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    make_calendar(session, settings, name="a", days="mon", times="09:00")
    make_calendar(session, settings, name="b", days="tue", times="09:00")
    assert expand_due_calendars(session, now=NOW, horizon_days=14, limit=1) == 2
    assert expand_due_calendars(session, now=NOW, horizon_days=14, limit=1) == 2
    assert expand_due_calendars(session, now=NOW, horizon_days=14, limit=1) == 0


def test_a_calendar_is_extended_hourly_by_the_time_that_passed(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    make_calendar(session, settings, days="daily", times="13:30")  # 12:30 UTC
    assert expand_due_calendars(session, now=NOW, horizon_days=1) == 1
    assert expand_due_calendars(session, now=NOW + timedelta(minutes=59), horizon_days=1) == 0
    assert expand_due_calendars(session, now=NOW + timedelta(hours=1), horizon_days=1) == 1


def test_a_calendar_horizon_overrides_the_setting(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    make_calendar(session, settings, days="daily", times="09:00", horizon_days=3)
    assert expand_due_calendars(session, now=NOW, horizon_days=14) == 3


def test_caption_templates_rotate_with_the_slot_variables_filled(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    make_calendar(
        session,
        settings,
        days="fri,sat",
        times="09:00",
        scenes=["beach_day", "workout"],
        caption_templates=["{day} {scene} by {name}", "at {time} in {environment}"],
        environments=["urban"],
    )
    expand_due_calendars(session, now=NOW, horizon_days=2)
    assert [r[0] for r in plan(session, Post.caption_text)] == [
        "Friday beach day by Mia",
        "at 09:00 in urban",
    ]


def test_a_long_zone_name_keeps_the_label_within_its_column() -> None:
    tz = ZoneInfo("America/Argentina/ComodRivadavia")
    label = local_label(datetime(2026, 11, 26, 12, 0, tzinfo=UTC), tz)
    assert label == "2026-11-26 09:00 UTC-0300"


def test_a_one_off_post_in_a_long_named_zone_fits_its_label_column(session: Session) -> None:
    add_influencer(session, handle="ana")
    session.execute(update(Influencer).values(timezone="America/Argentina/ComodRivadavia"))
    post = session.get_one(Post, add_post(session, "ana"))
    assert len(post.local_publish_time) <= 40 and "UTC" in post.local_publish_time
