"""The beat: one process that ticks every few seconds and sends what the tick claimed.

Guarded by a lock, so a second beat started by mistake waits on standby and duplicates nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from models import utcnow
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.locks import LockCheck, beat_lock
from pipeline.settings import Settings
from pipeline.steps.tick import TickReport, tick
from tasks.app import REFRESH_TOKENS
from tasks.beat_chores import BeatChores
from tasks.send import send_dispatches

__all__ = ["run_beat"]

log = logging.getLogger(__name__)
HOURLY = 3600.0  # token refresh: cheap to ask, and Meta's tokens live 60 days


def run_beat(
    app: Celery,
    settings: Settings,
    *,
    stop: threading.Event,
    on_tick: Callable[[TickReport], None] | None = None,
) -> None:
    """Tick until ``stop`` is set; while another beat holds the lock, wait and retry."""
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    chores = BeatChores(app, settings)
    try:
        while not stop.is_set():
            with beat_lock(settings, engine) as still_held:
                if still_held is None:
                    log.warning("another beat holds the lock; standing by")
                    chores.standby()
                    stop.wait(settings.tick_seconds)
                    continue
                log.info("beat: ticking every %.0f s", settings.tick_seconds)
                _tick_until(app, settings, factory, stop, on_tick, still_held, chores)
    finally:
        chores.close()
        engine.dispose()


def _tick_until(
    app: Celery,
    settings: Settings,
    factory: sessionmaker[Session],
    stop: threading.Event,
    on_tick: Callable[[TickReport], None] | None,
    still_held: LockCheck,
    chores: BeatChores,
) -> None:
    next_hourly = time.monotonic()
    while not stop.is_set():
        if not still_held():
            log.error("beat lost its lock (database connection dropped); standing by")
            return
        started = time.monotonic()
        try:
            with session_scope(factory) as session:
                report = tick(session, settings=settings, now=utcnow())
            send_dispatches(report.dispatches, app)
            chores.ticked(report)
            if started >= next_hourly:
                app.send_task(REFRESH_TOKENS)
                next_hourly = started + HOURLY
        except Exception:  # a database or broker outage must not kill the beat
            log.exception("beat tick failed; retrying next tick")
        else:
            if on_tick:
                on_tick(report)
        stop.wait(max(0.0, settings.tick_seconds - (time.monotonic() - started)))
