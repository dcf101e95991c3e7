"""The beat lock: one holder at a time, no idle transaction held open, loss is noticed."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from pipeline.db import make_engine
from pipeline.locks import beat_lock
from pipeline.settings import Settings
from tests.integration.conftest import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def pg() -> Iterator[tuple[Settings, Engine]]:
    url, drop = fresh_database()
    settings = Settings(database_url=url, secret_key=secrets.token_urlsafe(32))
    engine = make_engine(settings)
    try:
        yield settings, engine
    finally:
        engine.dispose()
        drop()


def test_a_second_beat_stands_by_until_the_first_lets_go(pg: tuple[Settings, Engine]) -> None:
    settings, engine = pg
    other = make_engine(settings)
    try:
        with beat_lock(settings, engine) as first:
            assert first is not None and first()
            with beat_lock(settings, other) as second:
                assert second is None
        with beat_lock(settings, other) as second:
            assert second is not None and second()
    finally:
        other.dispose()


def test_holding_the_lock_keeps_no_transaction_open(pg: tuple[Settings, Engine]) -> None:
    settings, engine = pg
    with beat_lock(settings, engine) as held, engine.connect() as probe:
        assert held is not None
        states = probe.scalars(
            text(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ).all()
    assert "idle in transaction" not in states


def test_a_dropped_connection_is_noticed(pg: tuple[Settings, Engine]) -> None:
    settings, engine = pg
    with beat_lock(settings, engine) as held, engine.connect() as admin:
        assert held is not None and held()
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid <> pg_backend_pid()"
            )
        )
        assert not held()
