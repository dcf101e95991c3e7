"""``ryla worker`` and ``ryla beat`` started while the database is away wait for it, saying so
once, instead of exiting with the schema check's error; once it answers they go on."""

from __future__ import annotations

import logging
import threading

import psycopg
import pytest

import admin.service_cli as service_cli
import tasks.beat
from tests.unit.conftest import Invoke
from tests.unit.test_health import closed_port, wrapped


def test_the_beat_started_while_the_database_is_away_waits_for_it(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql+psycopg://ryla:hunter2@127.0.0.1:{closed_port()}/ryla"
    monkeypatch.setenv("RYLA_DATABASE_URL", url)
    monkeypatch.setenv("RYLA_SECRET_KEY", "k" * 40)
    stop, waits = threading.Event(), []

    def delay(tries: int) -> float:
        waits.append(tries)
        if len(waits) == 3:
            stop.set()  # Ctrl-C while it waits
        return 0.0

    def never(*_: object, **__: object) -> None:
        raise AssertionError("the beat ran without its database")

    monkeypatch.setattr(service_cli, "_stop_on_signals", lambda: stop)
    monkeypatch.setattr(service_cli, "retry_delay", delay)
    monkeypatch.setattr(tasks.beat, "run_beat", never)
    result = ryla("beat")
    assert result.exit_code == 0 and "error:" not in result.output
    assert waits == [0, 1, 2]  # a growing back-off, not one try and out
    assert result.output.count("database unreachable, retrying") == 1
    assert "hunter2" not in result.output


def test_waiting_for_the_database_says_when_it_is_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service_cli, "retry_delay", lambda tries: 0.0)
    tries: list[int] = []

    def migrate() -> None:
        tries.append(1)
        if len(tries) < 3:
            raise wrapped(psycopg.OperationalError("connection failed: Connection refused"))

    with caplog.at_level(logging.INFO):
        assert service_cli._when_the_database_answers(migrate, threading.Event())
    said = [r.getMessage() for r in caplog.records if r.name == "pipeline.health"]
    assert len(tries) == 3 and len(said) == 2
    assert said[0].startswith("database unreachable, retrying") and said[1].startswith(
        "database back after"
    )


def test_a_query_the_database_refused_is_no_outage_and_is_not_waited_out() -> None:
    def broken() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        service_cli._when_the_database_answers(broken, threading.Event())
