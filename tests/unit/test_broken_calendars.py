"""Planning isolation: a calendar that cannot be expanded is marked broken with the reason, the
beat plans the others, and an edit that fixes it clears the mark."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models import ContentCalendar, Post, SlotRule
from pipeline.errors import InputError
from pipeline.planning.calendars import edit_calendar, list_calendars
from pipeline.planning.expand import EXPAND_EVERY, expand_due_calendars
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.settings import Settings
from pipeline.steps.tick import tick
from tests.calendar_kit import make_calendar, make_influencer
from tests.conftest import NOW


def _calendars(session: Session, settings: Settings) -> dict[str, int]:
    make_influencer(session, "ana", "Europe/Berlin")
    make_influencer(session, "bo", "Asia/Tokyo")
    ids = {
        "ana/main": make_calendar(session, settings, "ana", days="daily", times="09:00").id,
        "ana/rr": make_calendar(
            session, settings, "ana", "rr", rrule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=19"
        ).id,
        "bo/main": make_calendar(session, settings, "bo", days="mon,thu", times="12:00").id,
    }
    return ids


def _break(session: Session, calendar_id: int, **columns: Any) -> None:
    """What the door refuses today, written as an older version (or a hand in psql) left it."""
    session.execute(update(SlotRule).where(SlotRule.calendar_id == calendar_id).values(**columns))
    session.expire_all()


def _planned(session: Session, calendar_id: int) -> int:
    stmt = select(func.count()).select_from(Post).where(Post.calendar_id == calendar_id)
    return int(session.scalar(stmt) or 0)


BREAKAGES = [
    ({"dtstart": "999-01-01T00:00", "anchor_at": None}, "its stored start '999-01-01T00:00'"),
    ({"caption_templates": ["x" * 2195 + "{scene}"], "scenes": ["morning_coffee"]}, "2,209 char"),
    ({"dtstart": "1000-01-01T00:00", "anchor_at": None, "rrule": "FREQ=HOURLY;BYMINUTE=0"},
     "more than 200,000 slots back"),
    ({"rrule": None, "dtstart": None, "days_of_week": [1], "times": ["25:00"]}, "'25:00'"),
]  # fmt: skip


@pytest.mark.parametrize(("columns", "reason"), BREAKAGES, ids=lambda v: str(v)[:30])
def test_one_broken_calendar_does_not_stop_the_others(
    session: Session, settings: Settings, columns: dict[str, Any], reason: str
) -> None:
    ids = _calendars(session, settings)
    _break(session, ids["ana/rr"], **columns)
    report = tick(session, settings=settings, now=NOW)  # the beat's whole tick, not just a part
    assert report.planned == 14 + 4
    assert (_planned(session, ids["ana/main"]), _planned(session, ids["bo/main"])) == (14, 4)
    assert _planned(session, ids["ana/rr"]) == 0
    broken = session.get_one(ContentCalendar, ids["ana/rr"])
    assert broken.broken_reason is not None and reason in broken.broken_reason
    assert broken.broken_reason.startswith("rule 2 cannot be planned: ")
    assert (broken.broken_at, broken.expand_at, broken.planned_until) == (
        NOW,
        NOW + EXPAND_EVERY,  # tried again within the hour, in case a fix was deployed
        None,
    )
    tick(session, settings=settings, now=NOW + timedelta(seconds=15))  # the next tick
    assert broken.expand_at == NOW + EXPAND_EVERY  # not tried again: an hour, not every tick
    later = tick(session, settings=settings, now=NOW + EXPAND_EVERY)
    assert later.planned >= 0 and session.get_one(ContentCalendar, ids["ana/rr"]).broken_at == NOW
    assert broken.expand_at == NOW + 2 * EXPAND_EVERY


def _break_formats(session: Session, calendar_id: int, formats: Any) -> None:
    session.execute(
        update(ContentCalendar).where(ContentCalendar.id == calendar_id).values(formats=formats)
    )
    session.expire_all()


def test_a_calendar_with_an_unknown_format_is_marked_broken_and_the_others_planned(
    session: Session, settings: Settings
) -> None:
    ids = _calendars(session, settings)
    _break_formats(session, ids["ana/main"], ["feed_sqaure"])
    report = tick(session, settings=settings, now=NOW)
    assert report.planned == 4 + 2
    assert _planned(session, ids["ana/main"]) == 0
    broken = session.get_one(ContentCalendar, ids["ana/main"])
    assert broken.broken_reason is not None
    assert broken.broken_reason.startswith("the calendar's formats: unknown format 'feed_sqaure'")
    with pytest.raises(InputError) as caught:  # an edit of something else names the fix
        edit_calendar(
            session=session, handle="ana", name="main", rule=RuleIn(times="10:00"),
            settings_in=CalendarSettingsIn(), rule_id=None, settings=settings, now=NOW,
        )  # fmt: skip
    assert str(caught.value).endswith("`ryla calendar edit ana main --format …`")
    assert caught.value.field == "formats"
    edit_calendar(
        session=session, handle="ana", name="main", rule=RuleIn(),
        settings_in=CalendarSettingsIn(formats=["feed_square"]), rule_id=None,
        settings=settings, now=NOW,
    )  # fmt: skip
    assert broken.broken_reason is None
    tick(session, settings=settings, now=NOW)
    formats = session.scalars(select(Post.formats).where(Post.calendar_id == ids["ana/main"]))
    assert set(map(tuple, formats)) == {("feed_square",)}


def test_a_post_with_an_unknown_format_does_not_stop_the_tick(
    session: Session, settings: Settings
) -> None:
    """A post row written by hand: the others are claimed; it goes alone and fails at generate."""
    ids = _calendars(session, settings)
    tick(session, settings=settings, now=NOW)
    first = {
        cid: session.scalar(
            select(Post).where(Post.calendar_id == cid).order_by(Post.publish_at).limit(1)
        )
        for cid in (ids["ana/main"], ids["bo/main"])
    }
    bad, good = first[ids["ana/main"]], first[ids["bo/main"]]
    assert bad is not None and good is not None
    bad.formats = ["feed_sqaure"]
    good.generate_at = bad.generate_at  # both due at the same tick
    session.flush()
    report = tick(session, settings=settings, now=bad.generate_at)
    keys = {d.post_id: d.batch_key for d in report.dispatches}
    assert keys[bad.id] == "" and keys[good.id].startswith("896x1120|")


def test_the_list_shows_a_broken_calendar_and_why(session: Session, settings: Settings) -> None:
    ids = _calendars(session, settings)
    _break(session, ids["ana/rr"], dtstart="999-01-01T00:00", anchor_at=None)
    expand_due_calendars(session, now=NOW, horizon_days=14)
    rows = {f"{r.handle}/{r.name}": r for r in list_calendars(session, handle=None, now=NOW)}
    assert rows["ana/rr"].state == "BROKEN"
    assert rows["ana/rr"].broken.startswith("since 2026-11-26 13:00 Europe/Berlin: rule 2 ")
    assert (rows["ana/main"].state, rows["ana/main"].broken) == ("active", "")


def _edit(session: Session, settings: Settings, rule_id: int | None = None, **rule: Any) -> Any:
    return edit_calendar(
        session=session,
        handle="ana",
        name="rr",
        rule=RuleIn(**rule),
        settings_in=CalendarSettingsIn(),
        rule_id=rule_id,
        settings=settings,
        now=NOW,
    )


def test_an_edit_that_fixes_the_rule_clears_the_mark(session: Session, settings: Settings) -> None:
    ids = _calendars(session, settings)
    _break(session, ids["ana/rr"], dtstart="999-01-01T00:00", anchor_at=None)
    expand_due_calendars(session, now=NOW, horizon_days=14)
    _edit(session, settings, start="2026-11-02")
    calendar = session.get_one(ContentCalendar, ids["ana/rr"])
    assert (calendar.broken_reason, calendar.broken_at, calendar.expand_at) == (None, None, None)
    assert expand_due_calendars(session, now=NOW, horizon_days=14) == 2  # two Mondays at 19:00


def test_an_edit_that_leaves_a_broken_rule_names_it(session: Session, settings: Settings) -> None:
    ids = _calendars(session, settings)
    rr = session.get_one(ContentCalendar, ids["ana/rr"])
    make_calendar(session, settings, "ana", "rr", days="sat", times="10:00")
    session.execute(update(SlotRule).where(SlotRule.id == 4).values(times=["25:00"]))
    session.expire_all()
    expand_due_calendars(session, now=NOW, horizon_days=14)
    with pytest.raises(InputError) as caught:
        _edit(session, settings, rule_id=2, start="2026-11-02")
    assert str(caught.value).startswith("rule 4 cannot be planned (malformed time '25:00'")
    assert str(caught.value).endswith("fix it first with `ryla calendar edit` and --rule 4")
    assert caught.value.field == "rule_id"
    assert session.get_one(ContentCalendar, rr.id).broken_reason is not None


def test_expansion_cost_does_not_grow_with_the_age_of_a_rule(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule's anchor follows "now": expansion counts on from there, with the same ordinals."""
    import pipeline.planning.walls as walls

    make_influencer(session, "ana", "Europe/Berlin")
    start = datetime(2022, 1, 1)  # four years of hourly slots before NOW
    make_calendar(
        session, settings, "ana", rrule="FREQ=HOURLY;BYMINUTE=0", start=f"{start:%Y-%m-%d}",
        scenes=["travel", "workout", "cozy_home"], horizon_days=2,
    )  # fmt: skip
    walked: list[int] = []
    original = walls._occurrences

    def counting(*args: Any) -> Any:
        for item in original(*args):
            walked.append(1)
            yield item

    monkeypatch.setattr(walls, "_occurrences", counting)
    later = NOW + timedelta(days=30)
    assert expand_due_calendars(session, now=later, horizon_days=2) == 48
    assert len(walked) < 24 * 40  # a month of hourly slots since the rule was added, not years
    for key, scene in session.execute(select(Post.slot_key, Post.scene)):
        wall = datetime.fromisoformat(key.split(":", 2)[2])
        n = int((wall - start).total_seconds() // 3600)  # its ordinal counted from the start
        assert scene == ["travel", "workout", "cozy_home"][n % 3], key
