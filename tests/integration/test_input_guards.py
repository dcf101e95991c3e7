"""The door and planning isolation on real services: a broken calendar beside healthy ones that
real workers plan and publish; races on PostgreSQL; a database that refuses one calendar's rows."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, event, func, inspect, select, text, update
from sqlalchemy.orm import Session

import pipeline.planning.posts as posts
from admin.cli import cli
from migrations import migrate
from models import ContentCalendar, Post, PostStatus, SlotRule, utcnow
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.planning.expand import expand_due_calendars
from pipeline.planning.influencers import set_daily_cap
from pipeline.settings import Settings
from tests.calendar_kit import make_calendar, make_influencer
from tests.conftest import add_post
from tests.integration.conftest import Backend, Processes, fresh_database
from tests.integration.test_chain import wait_for

pytestmark = pytest.mark.integration


def _soon(tz: str) -> str:
    """The next local HH:MM at least 20 s away: time for the beat to plan it, not to idle."""
    from zoneinfo import ZoneInfo

    at = utcnow().astimezone(ZoneInfo(tz)) + timedelta(seconds=80)
    return f"{at:%H:%M}"


def test_a_broken_calendar_beside_healthy_ones_leaves_them_planned_and_published(
    backend: Backend, processes: Processes
) -> None:
    with session_scope(backend.factory) as s:
        for handle, tz in (("ana", "Europe/Berlin"), ("bo", "Asia/Tokyo")):
            make_influencer(s, handle, tz)
            soon = _soon(tz)
            make_calendar(s, backend.settings, handle, lead_minutes=0, days="daily", times=soon)
        broken = make_calendar(
            s, backend.settings, "ana", "rr", rrule="FREQ=DAILY;BYHOUR=7", lead_minutes=0
        )
        # What an older version let in: a start that cannot be read back.
        s.execute(
            update(SlotRule)
            .where(SlotRule.calendar_id == broken.id)
            .values(dtstart="999-01-01T00:00", anchor_at=None)
        )
        broken_id = broken.id
    processes.worker("gpu", concurrency=1)
    processes.worker("cpu,io")
    processes.start("beat")
    ids = _posts_due_within(backend, minutes=3)
    assert len(ids) == 2, processes.logs()
    wait_for(backend, processes, ids, {PostStatus.PUBLISHED}, timeout=200)
    with backend.factory() as s:
        calendar = s.get_one(ContentCalendar, broken_id)
        assert (
            calendar.broken_reason
            and "its stored start '999-01-01T00:00'" in calendar.broken_reason
        )
        assert s.scalars(select(Post.id).where(Post.calendar_id == broken_id)).all() == []
    listing = _cli(backend, "calendar", "list", "ana")
    assert "ana/rr  BROKEN" in listing and "not planned since" in listing
    assert "BROKEN calendar ana/rr: rule" in _cli(backend, "status")


def _posts_due_within(backend: Backend, minutes: int) -> list[int]:
    """The healthy calendars' first posts, once the beat has planned them."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with backend.factory() as s:
            ids = s.scalars(
                select(Post.id).where(Post.publish_at < utcnow() + timedelta(minutes=minutes))
            ).all()
        if len(ids) >= 2:
            return list(ids)
        time.sleep(0.5)
    return list(ids)


def _cli(backend: Backend, *args: str) -> str:
    result = CliRunner(env=backend.env).invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Settings]:
    url, drop = fresh_database()
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data", database_url=url, secret_key=secrets.token_urlsafe(32)
    )
    try:
        yield settings
    finally:
        drop()


def _env(settings: Settings) -> dict[str, str]:
    return {
        "RYLA_DATA_DIR": str(settings.data_dir),
        "RYLA_DATABASE_URL": settings.database_url,
        "RYLA_SECRET_KEY": settings.secret_key,
    }


def test_a_command_before_init_on_postgresql_says_so_and_creates_nothing(
    postgres: Settings,
) -> None:
    result = CliRunner(env=_env(postgres)).invoke(cli, ["calendar", "list"])
    assert result.exit_code == 2
    assert result.output.startswith("error: the database at postgresql+psycopg://")
    assert result.output.strip().endswith("has no RYLA tables yet: run `ryla init` first")
    engine = create_engine(postgres.database_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def _rival(engine: Engine, statement: str, **params: Any) -> Callable[..., None]:
    """Commits ``statement`` from another connection just before the command's first flush."""
    fired: list[bool] = []

    def before_flush(session: Session, *_: object) -> None:
        if not fired:
            fired.append(True)
            with engine.begin() as conn:
                conn.execute(text(statement), params)

    return before_flush


RACES = [
    (
        ["influencer", "add", "cy", "--name", "Cy", "--timezone", "UTC"],
        "INSERT INTO influencers (handle, display_name, timezone, persona, voice, caption_template,"
        " default_hashtags, approval_required, active, created_at) VALUES ('cy', 'Rival', 'UTC',"
        " '', '', '{text}', '[]', false, true, now())",
        "error: influencer 'cy' already exists: choose another handle",
    ),
    (
        ["calendar", "add", "ana", "extra", "--days", "mon", "--times", "08:00"],
        "INSERT INTO content_calendars (influencer_id, character_id, name, active, lead_minutes,"
        " formats, created_at) VALUES (1, 1, 'extra', true, 30, '[]', now())",
        "error: calendar 'extra' of 'ana' already exists: run the command again to add the rule",
    ),
]


@pytest.mark.parametrize(("args", "rival", "line"), RACES, ids=["influencer", "calendar"])
def test_two_commands_racing_end_as_already_exists(
    postgres: Settings, monkeypatch: pytest.MonkeyPatch, args: list[str], rival: str, line: str
) -> None:
    migrate(postgres)
    engine = make_engine(postgres)
    with session_scope(make_session_factory(engine)) as s:
        make_influencer(s, "ana", "Europe/Berlin")
    listener = _rival(engine, rival)
    event.listen(Session, "before_flush", listener)
    try:
        result = CliRunner(env=_env(postgres)).invoke(cli, args)
    finally:
        event.remove(Session, "before_flush", listener)
        engine.dispose()
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(line), result.output
    assert len(result.output.strip().splitlines()) == 1


def test_rows_the_database_refuses_break_only_their_calendar(postgres: Settings) -> None:
    migrate(postgres)
    engine = make_engine(postgres)
    factory = make_session_factory(engine)
    now = utcnow()
    try:
        with session_scope(factory) as s:
            make_influencer(s, "ana", "Europe/Berlin")
            good = make_calendar(s, postgres, "ana", days="daily", times="09:00", now=now).id
            bad = make_calendar(s, postgres, "ana", "bad", days="daily", times="10:00", now=now).id
            # A scene longer than its column (String(64)): PostgreSQL refuses the row.
            s.execute(update(SlotRule).where(SlotRule.calendar_id == bad).values(scenes=["s" * 80]))
        with session_scope(factory) as s:
            assert expand_due_calendars(s, now=now, horizon_days=7) == 7
        with factory() as s:
            assert s.get_one(ContentCalendar, good).broken_reason is None
            reason = s.get_one(ContentCalendar, bad).broken_reason or ""
            assert reason.startswith("the database refused its posts (value too long")
            assert s.get_one(ContentCalendar, bad).planned_until is None
    finally:
        engine.dispose()


def test_two_posts_added_at_once_never_pass_the_daily_cap_together(
    postgres: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both adds count the day as having room, then both insert: unless they take turns."""
    migrate(postgres)
    engine = make_engine(postgres)
    factory = make_session_factory(engine)
    day = (utcnow() + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    with session_scope(factory) as s:
        make_influencer(s, "ana", "UTC")
        set_daily_cap(session=s, handle="ana", cap=2, settings=postgres, now=utcnow())
        add_post(s, "ana", at=day, now=utcnow())
    both_checked = threading.Barrier(2, timeout=3)
    original = posts.check_day_has_room

    def check_then_meet(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        # Without turns, both get here before either inserts; with them, the other waits for
        # this one's transaction to end, and this one goes on alone.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait()

    monkeypatch.setattr(posts, "check_day_has_room", check_then_meet)
    outcomes: list[str] = []

    def add(hour: int) -> None:
        try:
            with session_scope(factory) as s:
                add_post(s, "ana", at=day.replace(hour=hour), now=utcnow())
            outcomes.append("added")
        except Exception as exc:  # the refusal names the cap
            outcomes.append(str(exc))

    threads = [threading.Thread(target=add, args=(hour,)) for hour in (12, 15)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with factory() as s:
        count = s.scalar(select(func.count()).select_from(Post))
    engine.dispose()
    assert count == 2, outcomes
    assert sorted(outcomes)[0] == "added" and "over the daily cap of 2" in sorted(outcomes)[1]
