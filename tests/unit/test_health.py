"""Dependency health: an outage is told from a bad query, said once when it starts and once when
it ends, probed no more often than asked, and reported without secrets."""

from __future__ import annotations

import logging
import socket
import sqlite3
from datetime import timedelta

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import exc, text

from pipeline.db import make_engine
from pipeline.health import (
    RETRY_CAP_SECONDS,
    HealthCheck,
    Watch,
    database_unreachable,
    describe_error,
    redact_url,
    retry_delay,
    watch_engine,
)
from pipeline.settings import Settings
from tests.conftest import NOW


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def closed_port() -> int:
    """A local port nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrapped(orig: Exception, kind: type[exc.DBAPIError] = exc.OperationalError) -> exc.DBAPIError:
    return kind("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(psycopg.OperationalError("connection failed: Connection refused")),
        wrapped(psycopg.errors.AdminShutdown("terminating connection")),
        wrapped(psycopg.errors.CannotConnectNow("the database system is starting up")),
        wrapped(psycopg.errors.TooManyConnections("too many clients")),
        wrapped(psycopg.InterfaceError("the connection is lost"), exc.InterfaceError),
        exc.OperationalError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
    ],
    ids=["refused", "admin shutdown", "starting up", "no slot", "lost", "invalidated"],
)
def test_connection_failures_are_outages(error: Exception) -> None:
    assert database_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(psycopg.errors.UndefinedTable("no such table"), exc.ProgrammingError),
        wrapped(psycopg.errors.QueryCanceled("statement timeout")),
        wrapped(psycopg.ProgrammingError("bad parameters"), exc.ProgrammingError),
        wrapped(sqlite3.OperationalError("database is locked")),
        ConnectionError("not a database error"),
    ],
    ids=["bad table", "timeout", "client misuse", "sqlite locked", "other"],
)
def test_a_refused_query_is_not_an_outage(error: Exception) -> None:
    assert not database_unreachable(error)


def test_a_watch_says_once_when_a_dependency_goes_and_once_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    watch = Watch("database", clock=clock)
    watch.answered()  # the first answer is no return from anything
    with caplog.at_level(logging.INFO, logger="pipeline.health"):
        for _ in range(5):
            watch.failed(wrapped(psycopg.OperationalError("connection failed: refused")))
            clock.advance(8.4)
        assert not watch.state.reachable and watch.state.since == NOW
        outage = watch.answered()
        watch.answered()
    assert [r.getMessage() for r in caplog.records] == [
        "database unreachable, retrying (OperationalError: connection failed: refused)",
        "database back after 42 s",
    ]
    assert outage is not None and outage.seconds == 42.0
    assert watch.pop_outage() == outage and watch.pop_outage() is None


def test_an_engine_reports_a_database_that_refuses_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql+psycopg://ryla@127.0.0.1:{closed_port()}/ryla"
    engine = make_engine(Settings(database_url=url, secret_key="k" * 40))  # type: ignore[call-arg]
    watch = Watch("database")
    watch_engine(engine, watch)
    try:
        with caplog.at_level(logging.WARNING, logger="pipeline.health"):
            for _ in range(3):
                with pytest.raises(exc.OperationalError) as raised, engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                assert database_unreachable(raised.value)
    finally:
        engine.dispose()
    assert watch.state.reachable is False and "Connection refused" in (watch.state.error or "")
    assert len(caplog.records) == 1


def test_retry_delays_double_up_to_the_cap() -> None:
    firsts = [retry_delay(n) for n in range(4)]
    for n, delay in enumerate(firsts):
        assert 0.75 * 2**n <= delay <= 2**n
    assert all(retry_delay(n) <= RETRY_CAP_SECONDS for n in range(4, 200))
    assert retry_delay(1000) >= 0.75 * RETRY_CAP_SECONDS


def test_passwords_never_reach_a_report() -> None:
    assert redact_url("redis://:hunter2@redis:6379/0") == "redis://:***@redis:6379/0"
    assert (
        redact_url("postgresql+psycopg://ryla:hunter2@db/ryla")
        == "postgresql+psycopg://ryla:***@db/ryla"
    )
    assert redact_url("filesystem://localhost/") == "filesystem://localhost/"
    line = describe_error(ConnectionError("cannot reach amqp://guest:hunter2@mq:5672//\nmore"))
    assert "hunter2" not in line and line.startswith("ConnectionError: cannot reach amqp://")


def test_a_health_check_asks_no_more_often_than_its_interval() -> None:
    clock = Clock()
    asked = {"database": 0, "broker": 0}
    broker_up = False

    def database() -> None:
        asked["database"] += 1

    def broker() -> None:
        asked["broker"] += 1
        if not broker_up:
            raise ConnectionRefusedError("Connection refused")

    check = HealthCheck({"database": database, "broker": broker}, clock=clock, logger=None)
    first = check.report()
    clock.advance(1)
    assert check.report() == first and asked == {"database": 1, "broker": 1}
    assert not first.ok and first.unreachable == ["broker"]
    body = first.as_dict()
    assert body["status"] == "unavailable" and body["broker"]["since"] == NOW.isoformat()
    assert body["broker"]["error"] == "ConnectionRefusedError: Connection refused"
    clock.advance(5)
    broker_up = True
    later = check.report()
    assert later.ok and asked == {"database": 2, "broker": 2}
    assert later.as_dict()["broker"] == {
        "reachable": True,
        "since": clock.now.isoformat(),
        "error": None,
    }
