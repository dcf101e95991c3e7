"""What the broker says right now: messages waiting per queue, and the workers that answer.

Both are hints (the database holds the record); each question is bounded by a short timeout.
"""

from __future__ import annotations

import logging

from celery import Celery
from kombu import Connection
from kombu.exceptions import ChannelError

from tasks.app import QUEUES

__all__ = ["queue_depths", "workers_seen"]

log = logging.getLogger(__name__)


def queue_depths(app: Celery) -> dict[str, int | None]:
    """Messages waiting in each queue; None for a queue the broker would not count."""
    depths: dict[str, int | None] = dict.fromkeys(QUEUES)
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            for name in QUEUES:
                depths[name] = _depth(conn, name)
    except Exception as exc:  # kombu raises a zoo of transport errors
        log.warning("queue depths unavailable: %s", type(exc).__name__)
    return depths


def _depth(conn: Connection, name: str) -> int:
    channel = conn.channel()
    try:
        return int(channel.queue_declare(queue=name, passive=True)[1])
    except ChannelError:  # Redis keeps no key for an empty queue
        return 0
    finally:
        channel.close()


def workers_seen(app: Celery, *, timeout: float = 0.5) -> list[str]:
    """Workers that answer a ping; the server-less broker has no channel to ask them on."""
    if not app.conf.worker_enable_remote_control:
        return []
    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception as exc:  # kombu raises a zoo of transport errors
        log.warning("worker ping failed: %s", type(exc).__name__)
        return []
    return sorted(name for reply in replies for name in reply)
