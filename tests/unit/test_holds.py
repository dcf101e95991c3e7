"""Pausing holds posts, resuming never floods, deleting cancels the future and keeps history."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import ContentCalendar, Post, PostEvent, PostStatus, SlotRule
from pipeline.planning.expand import expand_due_calendars
from pipeline.planning.holds import (
    delete_calendar,
    pause_calendar,
    pause_influencer,
    resume_calendar,
    resume_influencer,
)
from pipeline.settings import Settings
from pipeline.steps.claims import claim, claim_due
from pipeline.steps.lease import take_lease
from pipeline.steps.moves import Step
from pipeline.steps.tick import mark_missed
from tests.calendar_kit import make_calendar, plan
from tests.conftest import NOW

S = PostStatus


@pytest.fixture
def daily(session: Session, settings: Settings, influencer_id: int) -> list[int]:
    """mia's "main": daily at 13:00 Berlin (12:00 UTC) from today (NOW), no lead time."""
    make_calendar(session, settings, days="daily", times="13:00", lead_minutes=0)
    expand_due_calendars(session, now=NOW, horizon_days=7)
    return [post_id for (post_id,) in plan(session, Post.id)]


def day(n: int, minutes: int = 0) -> datetime:
    """The n-th slot's instant (slot 0 is NOW, today 12:00 UTC), plus some minutes."""
    return NOW + timedelta(days=n, minutes=minutes)


def _claim(session: Session, post_id: int) -> str:
    (dispatch,) = claim(
        session,
        [post_id],
        step=Step.GENERATE,
        expected=S.PLANNED,
        now=NOW,
        grace_seconds=60,
        actor="beat",
    )
    return dispatch.token


def test_a_paused_calendar_holds_its_posts(
    session: Session, settings: Settings, daily: list[int]
) -> None:
    report = pause_calendar(session=session, handle="mia", name="main", actor="t")
    assert (report.changed, report.held) == (True, 7)
    assert claim_due(session, settings=settings, now=day(1)) == []
    assert mark_missed(session, settings=settings, now=day(3)) == 0  # held, not "missed"


def test_pausing_takes_back_claims_no_worker_has_started(
    session: Session, settings: Settings, daily: list[int]
) -> None:
    token = _claim(session, daily[0])
    started = _claim(session, daily[1])
    assert take_lease(
        session, daily[1], step=Step.GENERATE, token=started, now=NOW, lease_seconds=60
    )
    report = pause_influencer(session=session, handle="mia", actor="t")
    assert report.returned == 1
    session.expire_all()
    assert session.get_one(Post, daily[0]).status is S.PLANNED
    assert session.get_one(Post, daily[1]).status is S.GENERATING  # its worker finishes it
    # The message already in the broker is now harmless: the worker finds no lease.
    assert (
        take_lease(session, daily[0], step=Step.GENERATE, token=token, now=NOW, lease_seconds=60)
        is None
    )


def test_resuming_marks_stale_slots_missed_and_publishes_recent_ones_late(
    session: Session, settings: Settings, daily: list[int]
) -> None:
    pause_calendar(session=session, handle="mia", name="main", actor="t")
    now = day(1, minutes=10)  # slot 0 passed a day ago, slot 1 ten minutes ago
    report = resume_calendar(
        session=session, handle="mia", name="main", settings=settings, now=now, actor="t"
    )
    assert (report.changed, report.missed, report.late) == (True, 1, 1)
    session.expire_all()
    stale = session.get_one(Post, daily[0])
    assert stale.status is S.MISSED
    assert "while calendar 'main' was paused" in (stale.last_error or "")
    dispatches = claim_due(session, settings=settings, now=now)
    assert [d.post_id for d in dispatches] == [daily[1]]  # one late post, no burst


def test_resuming_a_calendar_of_a_paused_influencer_keeps_it_held(
    session: Session, settings: Settings, daily: list[int]
) -> None:
    pause_influencer(session=session, handle="mia", actor="t")
    pause_calendar(session=session, handle="mia", name="main", actor="t")
    report = resume_calendar(
        session=session, handle="mia", name="main", settings=settings, now=day(3, 10), actor="t"
    )
    assert (report.missed, report.held) == (0, 7)
    report = resume_influencer(
        session=session, handle="mia", settings=settings, now=day(3, 10), actor="t"
    )
    assert (report.missed, report.late) == (3, 1)


def test_pausing_twice_changes_nothing(session: Session, daily: list[int]) -> None:
    pause_influencer(session=session, handle="mia", actor="t")
    assert not pause_influencer(session=session, handle="mia", actor="t").changed


def test_deleting_a_calendar_cancels_its_future_and_keeps_its_history(
    session: Session, daily: list[int]
) -> None:
    published, publishing, *future = daily
    session.execute(update(Post).where(Post.id == published).values(status=S.PUBLISHED))
    session.execute(
        update(Post).where(Post.id == publishing).values(status=S.PUBLISHING, lease_owner="run-abc")
    )
    done = delete_calendar(session=session, handle="mia", name="main", actor="t")
    assert (done.cancelled, done.in_flight, done.kept) == (5, 1, 2)
    session.expire_all()
    assert session.scalars(select(ContentCalendar)).all() == []
    assert session.scalars(select(SlotRule)).all() == []
    rows = {
        pid: (st, cal) for pid, st, cal in plan(session, Post.id, Post.status, Post.calendar_id)
    }
    assert rows[published] == (S.PUBLISHED, None)
    assert rows[publishing] == (S.PUBLISHING, None)
    assert {rows[pid] for pid in future} == {(S.CANCELLED, None)}
    details = session.scalars(select(PostEvent.detail).where(PostEvent.post_id == future[0]))
    assert list(details) == ["calendar 'main' deleted"]
