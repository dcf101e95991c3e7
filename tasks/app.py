"""The Celery app, configured from settings: queues gpu/cpu/io, routes, limits, transports.

Celery messages are hints, never the record: PostgreSQL (or SQLite) holds every post's state.
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
    # Redis redelivers unacked messages after this; it must exceed any ETA we send (minutes).
    return {"visibility_timeout": settings.redis_visibility_timeout}


def create_app(settings: Settings) -> Celery:
    app = Celery("ryla", broker=settings.broker_url, include=["tasks.steps", "tasks.notify"])
    server_less = settings.broker_url.startswith("filesystem")
    app.conf.update(
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
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
