"""The broker as this process sees it: does it answer, has it lost its messages, and the worker
consumer that reconnects on a capped back-off, saying once when the broker goes and comes back.

A marker message waits in a queue nobody consumes: when it is gone, the broker restarted empty
or was wiped, and every claim whose message it held must be claimed and sent again.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer
from celery.worker.consumer.consumer import CONNECTION_ERROR, CONNECTION_RETRY
from kombu import Connection, Producer
from kombu.exceptions import OperationalError as BrokerOperationalError

from models import utcnow
from pipeline.health import RETRY_CAP_SECONDS, Probe, Watch

__all__ = [
    "MARKER_QUEUE",
    "OutageLogFilter",
    "ResilientConsumer",
    "broker_lost_messages",
    "broker_unreachable",
    "broker_watch",
    "probe_broker",
]

log = logging.getLogger(__name__)
MARKER_QUEUE = "ryla.marker"
PROBE_TIMEOUT = 5.0  # seconds: a probe of a broker that does not answer must not hang a tick
_watches: dict[int, Watch] = {}


def broker_watch() -> Watch:
    """This process's view of the broker; a forked child starts its own."""
    return _watches.setdefault(os.getpid(), Watch("broker"))


def broker_unreachable(exc: BaseException) -> bool:
    """kombu turns every transport's connection errors into its OperationalError."""
    return isinstance(exc, BrokerOperationalError | ConnectionError | TimeoutError)


def probe_broker(app: Celery) -> Probe:
    def probe() -> None:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT)

    return probe


def broker_lost_messages(app: Celery) -> bool:
    """Ask the broker (raising when it does not answer) whether the marker is gone; put a new
    one if so. The first ask on an empty broker says True: nothing it should hold is known."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT)
        if _marker_count(conn):
            return False
        channel = conn.default_channel
        channel.queue_declare(MARKER_QUEUE, durable=True, auto_delete=False)
        marker = {"set_at": utcnow().isoformat()}
        Producer(channel).publish(marker, exchange="", routing_key=MARKER_QUEUE, retry=False)
        return True


def _marker_count(conn: Connection) -> int:
    # A channel of its own: on AMQP, asking for a queue that does not exist closes the channel.
    channel = conn.channel()
    try:
        return int(channel.queue_declare(MARKER_QUEUE, passive=True).message_count)
    except conn.channel_errors:
        return 0
    finally:
        channel.close()


class ResilientConsumer(Consumer):
    """Celery's consumer, reconnecting without end on a back-off capped at
    ``RETRY_CAP_SECONDS`` (Celery asks kombu for steps of 2 s up to 30 s), saying when the
    broker is back, and surviving the loss of a Redis connection while it holds messages."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        # Celery 5.7 with kombu 5.7 and Redis: the first close of the lost connection tries to
        # hand unacked messages back over it and fails; Celery then closes it again, and that
        # second try, on a transport whose client is gone, raises AttributeError, which Celery
        # does not expect: the worker exits ("Unrecoverable error"). Nothing is lost by
        # skipping it: the messages stay in Redis's unacked set, or went with the broker.
        if self.connection is not None:
            self.connection.close = _ignoring_attribute_errors(self.connection.close)
        super().on_connection_error_after_connected(exc)

    def ensure_connected(self, conn: Connection) -> Connection:
        conn.ensure_connection = functools.partial(  # type: ignore[method-assign]
            conn.ensure_connection,
            interval_start=1,
            interval_step=2,
            interval_max=RETRY_CAP_SECONDS,
        )
        connected = super().ensure_connected(conn)
        broker_watch().answered()
        return connected


def _ignoring_attribute_errors(close: Callable[[], None]) -> Callable[[], None]:
    def close_quietly() -> None:
        try:
            close()
        except AttributeError:
            log.debug("closing the lost broker connection again failed", exc_info=True)

    return close_quietly


class OutageLogFilter(logging.Filter):
    """Turns the consumer's line per reconnect try (with a traceback when a connection drops)
    into the broker watch's single line; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if record.msg == CONNECTION_ERROR and args:
            broker_watch().failed(args[1])
            return False
        if record.msg == "%s (%r)" and args and args[0] == CONNECTION_RETRY:
            broker_watch().failed(args[1])
            return False
        return True
