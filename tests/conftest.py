"""Shared fixtures: settings on a temporary data folder, a migrated SQLite database, clocks.

Unit tests need no services; integration fixtures live in tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy.orm import Session, sessionmaker

from models import Base
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.planning.influencers import (
    CharacterIn,
    InfluencerIn,
    create_character,
    create_influencer,
)
from pipeline.settings import Settings

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--days-ahead",
        type=int,
        default=0,
        help="Run with the wall clock moved this many days ahead (proves no test needs today).",
    )


@pytest.fixture(autouse=True, scope="session")
def _clock_moved_ahead(request: pytest.FixtureRequest) -> Iterator[None]:
    days = request.config.getoption("--days-ahead")
    if not days:
        yield
        return
    with time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=True):
        yield


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("RYLA_DATABASE_URL", "RYLA_BROKER_URL", "RYLA_DATA_DIR", "RYLA_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return Settings(data_dir=tmp_path / "data", generator="preview")  # type: ignore[arg-type]


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s


def add_influencer(session: Session, handle: str = "mia", **kwargs: object) -> int:
    data = InfluencerIn(handle=handle, display_name="Mia", timezone="Europe/Berlin", **kwargs)  # type: ignore[arg-type]
    influencer = create_influencer(session=session, data=data)
    create_character(
        session=session,
        handle=handle,
        data=CharacterIn(name="Mia", identity_prompt="a woman", seed=7),
    )
    return influencer.id


@pytest.fixture
def influencer_id(factory: sessionmaker[Session]) -> int:
    with session_scope(factory) as s:
        return add_influencer(s)


# Seeding posts: the highest daily cap an influencer may set, so tests of other things can add many.
SEED_SETTINGS = Settings.model_construct(max_posts_per_day=100)


def add_post(
    session: Session,
    handle: str = "mia",
    *,
    at: datetime = NOW,
    lead: int = 0,
    now: datetime | None = None,
    **kwargs: object,
) -> int:
    """A one-off post at ``at``, added (by default) while ``at`` was still to come."""
    from pipeline.planning.posts import PostIn, create_post

    data = PostIn(publish_at=at, lead_minutes=lead, **kwargs)  # type: ignore[arg-type]
    added = create_post(
        session=session, handle=handle, data=data, settings=SEED_SETTINGS, now=now or at
    )
    return added.id
