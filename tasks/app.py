"""The Celery app, configured from settings: queues gpu/cpu/io, routes, limits, transports.

Celery messages are hints, never the record: PostgreSQL (or SQLite) holds every post's state.

Outages, in one place. No process exits because the broker or the database went away; each
says so once, retries on a back-off capped at ``RETRY_CAP_SECONDS`` (10 s), and says when it
is back. What is configured here for it, and why:

- ``broker_connection_retry_on_startup``: a worker started before the broker waits for it.
- ``broker_connection_retry``, ``broker_connection_max_retries=None``: a worker that loses the
  broker reconnects without end (Celery's default gives up, and exits, after 100 tries).
- ``worker_consumer=ResilientConsumer``: reconnect tries 1, 3, 5 … 10 s apart (Celery's own
  grow to 30 s), with one log line when the broker goes and one when it is back.
- ``broker_heartbeat`` 30 s (AMQP) and ``health_check_interval`` 10 s (Redis): a connection
  that died without closing is noticed and replaced.
- ``socket_connect_timeout`` 5 s, ``socket_timeout`` 30 s: a silent broker fails a call
  instead of hanging it.
- ``visibility_timeout`` = ``RYLA_REDIS_VISIBILITY_TIMEOUT``, which settings require to exceed
  the longest lease: Redis hands an unacked message to another worker only after it.
- ``task_publish_retry_policy``: 3 tries within about a second, so a send fails fast; the
  claim is then given back, never lost (``tasks.send``).
- ``worker_cancel_long_running_tasks_on_connection_loss`` off: a task in hand finishes and
  records its result in the database; only its ack is lost, and a redelivery is ignored.

Beyond Celery: a task that finds the database away is retried under the same claim, without
limit, 1 … 10 s apart (``tasks.steps``); the beat gives claims it could not send back, and
re-sends every unstarted claim when the broker lost its messages (``tasks.beat``).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from pipeline.settings import Settings

__all__ = ["NOTIFY_SCAN", "NOTIFY_SEND", "QUEUES", "REFRESH_TOKENS", "TASK_NAMES", "create_app"]

QUEUES = ("gpu", "cpu", "io")
TASK_NAMES = {"generate": "ryla.generate", "render": "ryla.render", "publish": "ryla.publish"}
REFRESH_TOKENS = "ryla.refresh_tokens"
NOTIFY_SCAN, NOTIFY_SEND = "ryla.notify_scan", "ryla.notify_send"


def _transport_options(settings: Settings) -> dict[str, object]:
    if settings.broker_url.startswith("filesystem"):
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),  # kombu's default is ./control
            "store_processed": False,
            "polling_interval": 0.2,
        }
    return {
        # Redis redelivers unacked messages after this; it must exceed any ETA we send (minutes).
        "visibility_timeout": settings.redis_visibility_timeout,
        "health_check_interval": 10,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "socket_keepalive": True,
    }


def create_app(settings: Settings) -> Celery:
    app = Celery("ryla", broker=settings.broker_url, include=["tasks.steps", "tasks.notify"])
    server_less = settings.broker_url.startswith("filesystem")
    app.conf.update(
        # Without a server, kombu's filesystem transport with messages written whole.
        broker_transport="tasks.file_broker:Transport" if server_less else None,
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,  # None: forever (0 would mean no retry at all)
        broker_heartbeat=30,
        worker_consumer="tasks.broker:ResilientConsumer",
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.3,
            "interval_max": 1.0,
        },
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="cpu",
        task_routes={
            TASK_NAMES["generate"]: {"queue": "gpu"},
            TASK_NAMES["render"]: {"queue": "cpu"},
            TASK_NAMES["publish"]: {"queue": "io"},
            REFRESH_TOKENS: {"queue": "io"},
            NOTIFY_SCAN: {"queue": "io"},
            NOTIFY_SEND: {"queue": "io"},
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # The file transport has no broadcast channel; remote control needs one.
        worker_enable_remote_control=not server_less,
        # Task events (and the sent event from producers) give Flower its task history; they
        # need a broadcast channel too.
        worker_send_task_events=not server_less,
        task_send_sent_event=not server_less,
        enable_utc=True,
    )
    return app
