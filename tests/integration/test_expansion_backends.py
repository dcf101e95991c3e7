"""Calendars on PostgreSQL: the bulk insert plans exactly what SQLite plans; edits and holds run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from migrations import migrate
from models import Post
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.planning.calendars import edit_calendar
from pipeline.planning.expand import expand_due_calendars
from pipeline.planning.holds import delete_calendar, pause_calendar, resume_calendar
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.settings import Settings
from tests.calendar_kit import make_calendar, make_influencer
from tests.conftest import NOW
from tests.integration.conftest import fresh_database

pytestmark = pytest.mark.integration
PLAN = (
    Post.slot_key,
    Post.publish_at,
    Post.generate_at,
    Post.local_publish_time,
    Post.scene,
    Post.environment,
    Post.outfit,
    Post.caption_text,
    Post.hashtags,
    Post.formats,
    Post.status,
)


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[dict[str, Settings]]:
    url, drop = fresh_database()
    found = {
        "sqlite": Settings(data_dir=tmp_path / "lite"),  # type: ignore[call-arg]
        "postgresql": Settings(  # type: ignore[call-arg]
            data_dir=tmp_path / "pg", database_url=url, secret_key=secrets.token_urlsafe(32)
        ),
    }
    for settings in found.values():
        migrate(settings)
    try:
        yield found
    finally:
        drop()


def _plan_twice(settings: Settings) -> tuple[int, int, list[Any]]:
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as session:
            make_influencer(session, "ana", "America/New_York", default_hashtags=["a"])
            make_calendar(
                session,
                settings,
                "ana",
                days="mon,thu",
                times="02:30,18:00",
                scenes=["travel", "workout"],
                outfits=["red dress", "jeans, white tee"],
                caption_templates=["{day} {scene} «{outfit}»", "plain"],
                hashtags=["#ootd"],
            )
            make_calendar(
                session, settings, "ana", "rr", rrule="FREQ=DAILY;BYHOUR=7", start="2026-11-01"
            )
        with session_scope(factory) as session:
            first = expand_due_calendars(session, now=NOW, horizon_days=120)
        with session_scope(factory) as session:
            again = expand_due_calendars(session, now=NOW, horizon_days=120)
        with factory() as session:
            rows = [tuple(r) for r in session.execute(select(*PLAN).order_by(Post.slot_key))]
        return first, again, rows
    finally:
        engine.dispose()


def test_postgresql_plans_the_same_posts_as_sqlite(databases: dict[str, Settings]) -> None:
    lite, pg = (_plan_twice(databases[name]) for name in ("sqlite", "postgresql"))
    assert lite[0] == pg[0] == len(pg[2]) > 150
    assert lite[1] == pg[1] == 0
    assert pg[2] == lite[2]


def test_edit_pause_resume_and_delete_run_on_postgresql(databases: dict[str, Settings]) -> None:
    settings = databases["postgresql"]
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    later = NOW + timedelta(days=2)
    try:
        with session_scope(factory) as session:
            make_influencer(session, "ana", "Europe/Berlin")
            make_calendar(session, settings, "ana", days="daily", times="09:00,21:00")
            expand_due_calendars(session, now=NOW, horizon_days=7)
        with session_scope(factory) as session:
            done = edit_calendar(
                session=session,
                handle="ana",
                name="main",
                rule=RuleIn(times="09:00"),
                settings_in=CalendarSettingsIn(lead_minutes=45),
                rule_id=None,
                settings=settings,
                now=NOW,
            )
            assert (done.updated, done.removed, done.added) == (7, 7, 0)
        with session_scope(factory) as session:
            assert pause_calendar(session=session, handle="ana", name="main", actor="t").held == 7
        with session_scope(factory) as session:
            report = resume_calendar(
                session=session, handle="ana", name="main", settings=settings, now=later, actor="t"
            )
            assert report.missed == 2
        with session_scope(factory) as session:
            deleted = delete_calendar(session=session, handle="ana", name="main", actor="t")
            assert (deleted.cancelled, deleted.kept) == (5, 2)
    finally:
        engine.dispose()
