"""Editing calendars: re-plan only unclaimed future posts; bad input is one error, no writes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Post, PostEvent, PostStatus, SlotRule
from pipeline.errors import InputError
from pipeline.planning.calendars import edit_calendar, list_calendars
from pipeline.planning.expand import expand_due_calendars
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.settings import Settings
from pipeline.steps.claims import claim
from pipeline.steps.moves import Step, move
from tests.calendar_kit import make_calendar, plan
from tests.conftest import NOW

S = PostStatus


@pytest.fixture
def planned(session: Session, settings: Settings, influencer_id: int) -> Session:
    """mia's "main": mon, wed, fri at 09:00 and 18:30 Berlin time, planned 14 days ahead."""
    make_calendar(session, settings, days="mon,wed,fri", times="09:00,18:30", scenes=["travel"])
    assert expand_due_calendars(session, now=NOW, horizon_days=14) == 12
    return session


def edit(session: Session, settings: Settings, **changes: Any) -> Any:
    settings_keys = {"lead_minutes", "formats", "horizon_days"}
    return edit_calendar(
        session=session,
        handle="mia",
        name="main",
        rule=RuleIn(**{k: v for k, v in changes.items() if k not in settings_keys}),
        settings_in=CalendarSettingsIn(**{k: v for k, v in changes.items() if k in settings_keys}),
        rule_id=None,
        settings=settings,
        now=NOW,
    )


def _claim_first_evening_slot(session: Session) -> int:
    post_id = session.scalars(
        select(Post.id).where(Post.slot_key.like("%T18:30")).order_by(Post.publish_at)
    ).first()
    assert post_id is not None
    claim(
        session,
        [post_id],
        step=Step.GENERATE,
        expected=S.PLANNED,
        now=NOW,
        grace_seconds=60,
        actor="t",
    )
    return post_id


def test_editing_a_rule_replans_only_posts_no_worker_has_claimed(
    planned: Session, settings: Settings
) -> None:
    claimed = _claim_first_evening_slot(planned)
    done = edit(planned, settings, times="09:00,20:00")
    assert (done.updated, done.added, done.removed, done.kept) == (0, 6, 5, 1)
    planned.expire_all()
    times = [key.rsplit("T", 1)[1] for (key,) in plan(planned, Post.slot_key)]
    assert sorted(set(times)) == ["09:00", "18:30", "20:00"]
    assert planned.get_one(Post, claimed).status is S.GENERATING  # left to its worker


def test_an_edit_updates_planned_posts_in_place(planned: Session, settings: Settings) -> None:
    before = plan(planned, Post.id, Post.generate_at)
    done = edit(planned, settings, scenes=["workout", "golden_hour"], lead_minutes=90)
    assert (done.updated, done.added, done.removed) == (12, 0, 0)
    planned.expire_all()
    after = plan(planned, Post.id, Post.generate_at, Post.publish_at, Post.scene)
    assert [row[0] for row in after] == [row[0] for row in before]  # the same rows
    assert all(pub - gen == timedelta(minutes=90) for _, gen, pub, _ in after)
    assert {row[3] for row in after} == {"workout", "golden_hour"}


def test_a_dropped_slot_with_a_history_is_cancelled_and_its_key_released(
    planned: Session, settings: Settings
) -> None:
    (post_id,) = planned.scalars(select(Post.id).order_by(Post.publish_at).limit(1))
    move(planned, post_id, expected=S.PLANNED, to=S.MISSED, actor="t")
    move(planned, post_id, expected=S.MISSED, to=S.PLANNED, actor="t")
    edit(planned, settings, days="tue")
    planned.expire_all()
    post = planned.get_one(Post, post_id)
    assert (post.status, post.slot_key) == (S.CANCELLED, None)
    details = planned.scalars(select(PostEvent.detail).where(PostEvent.post_id == post_id))
    assert "re-planned: the rule no longer has this slot" in list(details)


def test_switching_a_rule_to_an_rrule_replans_it(planned: Session, settings: Settings) -> None:
    edit(planned, settings, rrule="FREQ=DAILY;BYHOUR=7;BYMINUTE=45", start="2026-11-01")
    planned.expire_all()
    labels = [label for (label,) in plan(planned, Post.local_publish_time)]
    assert len(labels) == 14 and all(" 07:45 " in label for label in labels)
    rule = planned.scalars(select(SlotRule)).one()
    assert (rule.days_of_week, rule.times, rule.dtstart) == ([], [], "2026-11-01T00:00")


def test_a_rule_added_to_a_planned_calendar_is_planned_at_once(
    planned: Session, settings: Settings
) -> None:
    make_calendar(planned, settings, days="sun", times="12:00")
    assert len(plan(planned, Post.id)) == 14
    with pytest.raises(InputError, match="already has this schedule"):
        make_calendar(planned, settings, days="sun", times="12:00")


BAD_INPUT = [
    ({"rrule": "FREQ=DAILY;BYHOUR=25"}, "malformed rrule 'FREQ=DAILY;BYHOUR=25'"),
    ({"rrule": "FREQ=SOMETIMES"}, "FREQ=SOMETIMES"),
    ({"rrule": "FREQ=MINUTELY"}, "FREQ=MINUTELY"),
    ({"rrule": "FREQ=DAILY;INTERVAL=0"}, "INTERVAL=0"),
    ({"rrule": "DTSTART:20261201T090000\nRRULE:FREQ=DAILY"}, "one RRULE line"),
    ({"rrule": "FREQ=DAILY;COUNT=3", "start": "2026-10-01"}, "has no occurrence after"),
    ({"rrule": "FREQ=DAILY;UNTIL=20200101T000000Z"}, "has no occurrence after"),
    ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "has no occurrence after"),
    ({"rrule": "FREQ=DAILY", "start": "next week"}, "malformed start 'next week'"),
    ({"rrule": "FREQ=DAILY", "days": "mon"}, "not both"),
    ({"times": "24:00"}, "malformed time '24:00'"),
    ({"times": "23:60"}, "malformed time '23:60'"),
    ({"days": "someday"}, "unknown day 'someday'"),
    ({"scenes": [""]}, "empty rotation: scenes"),
    ({"outfits": []}, "empty rotation: outfits"),
    ({"caption_templates": [" "]}, "empty rotation: caption templates"),
    ({"scenes": ["moonwalk"]}, "unknown scene 'moonwalk'"),
    ({"scenes": ["travel", "travel"]}, "scenes lists 'travel' twice"),
    ({"caption_templates": ["hi {mood}"]}, "unknown variable 'mood'"),
    ({"hashtags": ["#no-dash"]}, "hashtag '#no-dash'"),
    ({"horizon_days": 400}, "horizon 400 days"),
    ({"lead_minutes": -5}, "lead time -5 min"),
    ({"formats": ["poster"]}, "unknown format 'poster'"),
    ({}, "nothing to change"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_INPUT, ids=lambda v: str(v)[:40])
def test_bad_input_is_one_clear_error_and_changes_nothing(
    planned: Session, settings: Settings, changes: dict[str, Any], message: str
) -> None:
    columns = (Post.id, Post.slot_key, Post.scene, Post.generate_at)
    before = plan(planned, *columns)
    with pytest.raises(InputError) as caught:
        edit(planned, settings, **changes)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    planned.expire_all()
    assert plan(planned, *columns) == before
    rule = planned.scalars(select(SlotRule)).one()
    assert (rule.times, rule.rrule, rule.scenes) == (["09:00", "18:30"], None, ["travel"])


def test_a_calendar_with_several_rules_needs_the_rule_named(
    planned: Session, settings: Settings
) -> None:
    make_calendar(planned, settings, days="sun", times="12:00")
    with pytest.raises(InputError, match=r"has 2 rules \(1, 2\): pick one with --rule"):
        edit(planned, settings, times="10:00")


def test_the_list_shows_state_rules_and_the_next_slot(planned: Session, settings: Settings) -> None:
    (row,) = list_calendars(planned, handle="mia", now=NOW)
    assert (row.name, row.state, row.planned) == ("main", "active", 12)
    assert row.rules == ["#1 mon,wed,fri 09:00,18:30"]
    assert row.next_post == "2026-11-27 09:00 Europe/Berlin"
