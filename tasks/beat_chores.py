"""What the beat does besides ticking: tell the story of each tick in the log, keep its
heartbeat, and send the periodic io tasks (the notification scan).

The beat calls ``standby()`` while another beat holds the lock and ``ticked(report)`` after
each tick; a tick that found nothing to do logs nothing.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter

from celery import Celery

from pipeline.health import Watch
from pipeline.settings import Settings
from pipeline.steps.tick import TickReport
from tasks.app import NOTIFY_SCAN
from tasks.broker import broker_unreachable, broker_watch
from tasks.heartbeat import Heartbeat

__all__ = ["BeatChores", "describe_tick"]

log = logging.getLogger("tasks.beat")


def describe_tick(report: TickReport) -> str | None:
    """One line for a tick that did something, e.g. "planned 42; claimed 3 (generate 2,
    publish 1); marked 1 missed"; None when it did nothing."""
    parts = []
    if report.planned:
        parts.append(f"planned {report.planned}")
    if report.dispatches:
        steps = Counter(str(d.step) for d in report.dispatches)
        detail = ", ".join(f"{step} {n}" for step, n in sorted(steps.items()))
        parts.append(f"claimed {len(report.dispatches)} ({detail})")
    if report.reconciled:
        parts.append(f"returned {report.reconciled} expired lease(s)")
    if report.failed:
        parts.append(f"failed {report.failed} out of tries")
    if report.missed:
        parts.append(f"marked {report.missed} missed")
    return "; ".join(parts) or None


class BeatChores:
    def __init__(self, app: Celery, settings: Settings, *, database: Watch | None = None) -> None:
        self.app, self.settings = app, settings
        name = f"beat@{socket.gethostname()}"
        # The beat's own database watch: an outage is told once, not again by the heartbeat.
        self.heartbeat = Heartbeat(settings, name=name, role="beat", database=database).start()
        self._next_scan = time.monotonic()

    def standby(self) -> None:
        self.heartbeat.state = "standby"

    def ticked(self, report: TickReport) -> None:
        self.heartbeat.state = "active"
        if line := describe_tick(report):
            log.info("tick: %s", line)
        now = time.monotonic()
        if now >= self._next_scan:
            interval = self.settings.notify_scan_seconds
            try:
                # A scan nobody took in time is dropped: the next one sees the same and more.
                self.app.send_task(NOTIFY_SCAN, expires=max(60.0, 2 * interval))
            except Exception as exc:
                if not broker_unreachable(exc):
                    raise
                broker_watch().failed(exc)  # told once; the scan is sent at the next tick
                return
            self._next_scan = now + interval

    def close(self) -> None:
        self.heartbeat.stop()
