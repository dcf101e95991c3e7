"""The notification tasks on the io queue: the periodic scan, and one send per message.

Both ack early: a send whose worker dies is settled by the next scan, never redelivered. With
the database away both stop quietly (the worker's database watch says so once): the outbox
rows hold where each message stands, and the next scan carries on from there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from celery import current_app, shared_task

from pipeline.db import session_scope
from pipeline.health import database_unreachable
from pipeline.notify.deliver import deliver, make_sender
from pipeline.notify.scan import run_scan
from tasks.app import NOTIFY_SCAN, NOTIFY_SEND
from tasks.runtime import current_runtime

__all__ = ["notify_scan", "notify_send"]

log = logging.getLogger(__name__)


@contextmanager
def _left_to_the_next_scan(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        log.debug("%s stopped: database unreachable; the next scan carries on", what)


@shared_task(name=NOTIFY_SCAN, acks_late=False, soft_time_limit=60, time_limit=90)
def notify_scan() -> None:
    """Record new alerts, compose what is due, and send each due message as its own task."""
    rt = current_runtime()
    with _left_to_the_next_scan("notification scan"):
        with session_scope(rt.session_factory) as session:
            report = run_scan(session, settings=rt.settings, now=rt.clock())
        for notification_id in report.due:
            current_app.send_task(NOTIFY_SEND, args=[notification_id])


@shared_task(name=NOTIFY_SEND, acks_late=False, soft_time_limit=60, time_limit=90)
def notify_send(notification_id: str) -> None:
    rt = current_runtime()
    assert rt.http is not None
    send = make_sender(rt.http)
    with _left_to_the_next_scan(f"notification {notification_id}"):
        deliver(
            rt.session_factory, notification_id, settings=rt.settings, send=send, clock=rt.clock
        )
