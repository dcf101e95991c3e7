"""Heartbeats: a thread in each worker and beat process writes its row every few seconds.

Its engine holds no connection between beats, so a prefork child never inherits a live one.
An unreachable database is told by the process's database watch: once when it goes, once when
it is back.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from sqlalchemy.pool import NullPool

from models import utcnow
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.health import Watch, database_unreachable, watch_engine
from pipeline.observe.workers import Beat, record_heartbeat
from pipeline.settings import Settings

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)
WARN_EVERY = 60.0  # seconds between two warnings about a row that cannot be written


class Heartbeat:
    """``start()``, then ``state = "..."`` as the process changes, and ``stop()`` at the end."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        role: str,
        queues: str = "",
        database: Watch | None = None,  # the process's own, when it has one
    ) -> None:
        self.settings = settings
        self.name, self.role, self.queues = name, role, queues
        self.state = "starting"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine = make_engine(settings, poolclass=NullPool)
        self._factory = make_session_factory(self._engine)
        self._database = database or Watch("database")
        watch_engine(self._engine, self._database)
        self._warned_at = -WARN_EVERY

    def beat(self) -> None:
        """Write the row now; never raises. An outage is the watch's to tell (once); any other
        error is logged once a minute."""
        row = Beat(self.name, self.role, self.queues, os.getpid(), self.state)
        try:
            with session_scope(self._factory) as session:
                record_heartbeat(session, row, now=utcnow())
        except Exception as exc:
            if database_unreachable(exc):
                self._database.failed(exc)  # says nothing when the outage is already told
                return
            if time.monotonic() - self._warned_at >= WARN_EVERY:
                self._warned_at = time.monotonic()
                log.warning("heartbeat of %s not written (%s)", self.name, type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.settings.heartbeat_seconds)

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="ryla-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.state = "stopped"
        self.beat()
        self._engine.dispose()
