"""Whether the database and the broker answer, as this process sees them, and since when.

A ``Watch`` per dependency logs one line when it goes away and one when it is back; a
``HealthCheck`` probes them on demand for the health endpoint and ``ryla status``.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext

from models import utcnow

__all__ = [
    "RETRY_CAP_SECONDS",
    "DependencyState",
    "HealthCheck",
    "HealthReport",
    "Outage",
    "Probe",
    "Watch",
    "database_unreachable",
    "describe_error",
    "probe_database",
    "redact_url",
    "retry_delay",
    "watch_engine",
]

log = logging.getLogger(__name__)

# No wait between two tries against a dependency that is away is longer than this, so work
# resumes within this long of its return (plus a tick for what the beat hands out).
RETRY_CAP_SECONDS = 10.0

# SQLSTATEs that mean "the server is not there for us" rather than "this query was wrong":
# class 08 (connection exception), shutting down or starting up, and no free connection slot.
_UNREACHABLE_STATES = ("57P01", "57P02", "57P03", "53300")
_NOT_A_SERVER_ERROR = object()
_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")

Probe = Callable[[], None]  # returns when the dependency answers, raises when it does not


def retry_delay(attempt: int, *, first: float = 1.0, cap: float = RETRY_CAP_SECONDS) -> float:
    """Seconds to wait before try ``attempt + 1``: doubling from ``first``, never above ``cap``,
    with jitter so processes that lost a dependency together do not return in lockstep."""
    return min(cap, first * 2 ** min(attempt, 30)) * random.uniform(0.75, 1.0)


def database_unreachable(exc: BaseException) -> bool:
    """True when the database could not be reached or dropped the connection; False for a
    query the database refused, and for SQLite, whose "database is locked" is no outage."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", _NOT_A_SERVER_ERROR)
    if state is _NOT_A_SERVER_ERROR:
        return False
    if state is None:  # raised by the client library: no server answered
        return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    return str(state).startswith("08") or state in _UNREACHABLE_STATES


def redact_url(url: str) -> str:
    """The URL with its password replaced, fit for logs and status pages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def describe_error(exc: BaseException) -> str:
    """One short line: the driver's own error (not SQLAlchemy's wrapping), credentials hidden."""
    inner = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    lines = str(inner).strip().splitlines()
    message = _CREDENTIALS.sub(r"\1***@", lines[0] if lines else "")[:200]
    return f"{type(inner).__name__}: {message}" if message else type(inner).__name__


@dataclass(frozen=True)
class DependencyState:
    """One dependency as this process last saw it."""

    name: str
    reachable: bool | None  # None: not asked yet
    since: datetime | None  # when this process first saw it in this state
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "since": self.since.isoformat() if self.since else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class Outage:
    """A stretch of time a dependency did not answer this process."""

    name: str
    started: datetime
    ended: datetime

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()


class Watch:
    """One dependency as this process sees it; says once when it goes away and once when it is
    back. Thread-safe: a threaded server and the engine's events may report at once."""

    def __init__(
        self,
        name: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        logger: logging.Logger | None = log,  # None: keep quiet (a one-shot command reports it)
    ) -> None:
        self.name = name
        self._clock = clock
        self._log = logger
        self._lock = threading.Lock()
        self._state = DependencyState(name, None, None)
        self._ended: Outage | None = None

    @property
    def state(self) -> DependencyState:
        return self._state

    def failed(self, exc: BaseException | str) -> None:
        error = exc if isinstance(exc, str) else describe_error(exc)
        with self._lock:
            if self._state.reachable is False:
                self._state = DependencyState(self.name, False, self._state.since, error)
                return
            self._state = DependencyState(self.name, False, self._clock(), error)
        if self._log is not None:
            self._log.warning("%s unreachable, retrying (%s)", self.name, error)

    def answered(self) -> Outage | None:
        """Record an answer; the outage it ends, if it ends one."""
        with self._lock:
            before = self._state
            if before.reachable:
                return None
            now = self._clock()
            self._state = DependencyState(self.name, True, now)
            if before.reachable is None or before.since is None:  # the first answer
                return None
            self._ended = Outage(self.name, before.since, now)
        if self._log is not None:
            self._log.info("%s back after %.0f s", self.name, self._ended.seconds)
        return self._ended

    def pop_outage(self) -> Outage | None:
        """The last outage that ended and nobody has taken yet (the beat gives leases the time)."""
        with self._lock:
            ended, self._ended = self._ended, None
        return ended


def watch_engine(engine: Engine, watch: Watch) -> None:
    """Report every connection the engine could not make or lost, and every one it made."""

    def errored(context: ExceptionContext) -> None:
        if context.is_pre_ping:  # a stale pooled connection; the pool connects anew (or fails)
            return
        error = context.sqlalchemy_exception
        if context.is_disconnect or (error is not None and database_unreachable(error)):
            watch.failed(error if error is not None else context.original_exception)

    event.listen(engine, "handle_error", errored)
    event.listen(engine, "engine_connect", lambda *_: watch.answered())


def probe_database(engine: Engine) -> Probe:
    def probe() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return probe


@dataclass(frozen=True)
class HealthReport:
    dependencies: tuple[DependencyState, ...]

    @property
    def ok(self) -> bool:
        return all(d.reachable for d in self.dependencies)

    @property
    def unreachable(self) -> list[str]:
        return [d.name for d in self.dependencies if not d.reachable]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unavailable",
            "unreachable": self.unreachable,
            **{d.name: d.as_dict() for d in self.dependencies},
        }


class HealthCheck:
    """Asks each dependency on demand, at most once per ``min_interval`` seconds (a burst of
    health requests must not become a burst of connections), and remembers since when."""

    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        clock: Callable[[], datetime] = utcnow,
        min_interval: float = 2.0,
        logger: logging.Logger | None = log,
    ) -> None:
        self._probes = dict(probes)
        self._clock = clock
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._checked: datetime | None = None
        self.watches = {name: Watch(name, clock=clock, logger=logger) for name in probes}

    def report(self) -> HealthReport:
        with self._lock:
            now = self._clock()
            stale = self._checked is None or (
                (now - self._checked).total_seconds() >= self._min_interval
            )
            if stale:
                for name, probe in self._probes.items():
                    self._ask(name, probe)
                self._checked = now
            return HealthReport(tuple(w.state for w in self.watches.values()))

    def _ask(self, name: str, probe: Probe) -> None:
        try:
            probe()
        except Exception as exc:  # every driver and transport has its own errors
            self.watches[name].failed(exc)
        else:
            self.watches[name].answered()
