"""The beat: one process that ticks every few seconds and sends what the tick claimed.

Guarded by a lock, so a second beat started by mistake waits on standby and duplicates nothing.
It outlives its dependencies: with the database or the broker away it says so once, retries on
a capped back-off, and once they are back puts right what the outage left (``steps.outage``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models import utcnow
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.health import Outage, Watch, database_unreachable, retry_delay, watch_engine
from pipeline.locks import LockCheck, beat_lock
from pipeline.settings import Settings
from pipeline.steps.claims import ACTOR
from pipeline.steps.outage import extend_leases, return_unstarted
from pipeline.steps.tick import TickReport, tick
from tasks.app import REFRESH_TOKENS
from tasks.beat_chores import BeatChores
from tasks.broker import broker_lost_messages, broker_unreachable, broker_watch
from tasks.send import send_dispatches

__all__ = ["run_beat"]

log = logging.getLogger(__name__)
HOURLY = 3600.0  # token refresh: cheap to ask, and Meta's tokens live 60 days

# Asks the broker, raising when it does not answer; True when it lost the messages it held.
BrokerCheck = Callable[[], bool]


def run_beat(
    app: Celery,
    settings: Settings,
    *,
    stop: threading.Event,
    on_tick: Callable[[TickReport], None] | None = None,
    check_broker: BrokerCheck | None = None,
) -> None:
    """Tick until ``stop`` is set; while another beat holds the lock, wait and retry. Neither
    database nor broker going away ends it."""
    engine = make_engine(settings)
    database = Watch("database")
    watch_engine(engine, database)
    chores = BeatChores(app, settings, database=database)
    beat = _Beat(
        app,
        settings,
        engine,
        make_session_factory(engine),
        database,
        check_broker or (lambda: broker_lost_messages(app)),
        chores,
        stop,
        on_tick,
    )
    try:
        beat.run()
    finally:
        chores.close()
        engine.dispose()


@dataclass
class _Beat:
    app: Celery
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    database: Watch
    check_broker: BrokerCheck
    chores: BeatChores
    stop: threading.Event
    on_tick: Callable[[TickReport], None] | None
    misses: int = 0  # tries in a row that found a dependency away: the back-off's step
    next_hourly: float = 0.0
    resend: bool = False  # the broker lost its messages: send unstarted claims again
    outage: Outage | None = None  # a database outage whose leases still need their time back

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with beat_lock(self.settings, self.engine) as still_held:
                    if still_held is None:
                        log.warning("another beat holds the lock; standing by")
                        self.chores.standby()
                        self.stop.wait(self.settings.tick_seconds)
                        continue
                    log.info("beat: ticking every %.0f s", self.settings.tick_seconds)
                    self._tick_while_held(still_held)
            except Exception as exc:
                if not database_unreachable(exc):  # the watch has said it once already
                    log.exception("beat failed; starting again")
                self._back_off()

    def _back_off(self) -> None:
        self.stop.wait(retry_delay(self.misses))
        self.misses += 1

    def _tick_while_held(self, still_held: LockCheck) -> None:
        while not self.stop.is_set():
            if not still_held():
                log.warning("beat lost its lock (database connection dropped); taking it again")
                return
            started = time.monotonic()
            if not self._broker_answers():
                self._back_off()
                continue
            try:
                self._tick_and_send()
            except Exception as exc:
                if database_unreachable(exc):
                    return  # the lock went with the connection: take it again, backing off
                log.exception("beat tick failed; retrying next tick")
            self.stop.wait(max(0.0, self.settings.tick_seconds - (time.monotonic() - started)))

    def _broker_answers(self) -> bool:
        try:
            self.resend |= self.check_broker()
        except Exception as exc:  # every transport has its own errors
            broker_watch().failed(exc)
            return False
        broker_watch().answered()
        return True

    def _tick_and_send(self) -> None:
        self.outage = self.outage or self.database.pop_outage()
        with session_scope(self.factory) as session:
            if self.outage:
                extend_leases(session, outage=self.outage)
            if self.resend:
                reason = "the broker lost its messages (restarted empty or wiped)"
                return_unstarted(session, actor=ACTOR, reason=reason)
            report = tick(session, settings=self.settings, now=utcnow())
        self.outage, self.resend, self.misses = None, False, 0
        send_dispatches(report.dispatches, self.app, give_back_to=self.factory, actor=ACTOR)
        self.chores.ticked(report)
        if time.monotonic() >= self.next_hourly:
            self._send_hourly()
        if self.on_tick:
            self.on_tick(report)

    def _send_hourly(self) -> None:
        try:
            self.app.send_task(REFRESH_TOKENS)
        except Exception as exc:
            if not broker_unreachable(exc):
                raise
            broker_watch().failed(exc)  # asked again next tick
            return
        self.next_hourly = time.monotonic() + HOURLY
