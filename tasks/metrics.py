"""Prometheus metrics: what the workers record as steps end, and what is read at scrape time.

Workers record step durations and outcomes, seconds per generated image and publish lateness
into multi-process files (``pipeline.observe.metrics_dir``). A scrape merges those files, reads
posts by state, images, GPU cost, workers and notifications from the database, and queue depths
from the broker. ``metrics_wsgi_app`` / ``metrics_asgi_app`` serve it; ``ryla serve`` mounts it
at /metrics. prometheus-client is imported inside functions: a worker must first choose its
multi-process folder.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from celery import Celery

from models import utcnow
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.health import Watch, database_unreachable
from pipeline.observe.metrics import db_snapshot
from pipeline.observe.metrics_dir import metrics_files
from pipeline.observe.steps import StepEnded, add_listener
from pipeline.settings import Settings
from tasks.app import QUEUES

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "STEP_BUCKETS",
    "install_step_metrics",
    "metrics_asgi_app",
    "metrics_registry",
    "metrics_wsgi_app",
    "render_metrics",
    "serve_metrics",
]

log = logging.getLogger(__name__)
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
LATENESS_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)


@cache
def _instruments() -> dict[str, Any]:
    from prometheus_client import Counter, Histogram

    return {
        "step": Histogram(
            "ryla_step_seconds",
            "Seconds a step ran, from taking its lease to its end",
            ["step", "outcome"],
            buckets=STEP_BUCKETS,
        ),
        "outcomes": Counter(
            "ryla_step_outcomes",
            "Steps ended, by outcome and error class (publish: what Instagram or the target said)",
            ["step", "outcome", "error_class"],
        ),
        "image": Histogram(
            "ryla_image_generation_seconds",
            "GPU seconds per generated image (a batch's time shared by its images)",
            ["generator"],
            buckets=STEP_BUCKETS,
        ),
        "lateness": Histogram(
            "ryla_publish_lateness_seconds",
            "Seconds from a post's due time to its publication",
            buckets=LATENESS_BUCKETS,
        ),
    }


def _record(event: StepEnded) -> None:
    meters = _instruments()
    meters["step"].labels(event.step, event.outcome).observe(event.seconds)
    meters["outcomes"].labels(event.step, event.outcome, event.error_class or "").inc()
    for seconds in event.image_seconds:
        meters["image"].labels(event.generator or "unknown").observe(seconds)
    if event.lateness_seconds is not None:
        meters["lateness"].observe(event.lateness_seconds)


def install_step_metrics() -> None:
    """Record every finished step in this process (and its prefork children)."""
    _instruments()  # create them now, in the parent, so every child writes the same series
    add_listener(_record)


class _Merged:
    """The workers' multi-process files, across every process tree's folder."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.metrics_dir

    def collect(self) -> Iterator[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [str(f) for f in metrics_files(self.root)]
        return iter(MultiProcessCollector.merge(files, accumulate=True) if files else [])


class _Database:
    """Posts by state, images and GPU cost, workers, notifications: read at scrape time."""

    def __init__(self, settings: Settings, watch: Watch) -> None:
        self.settings = settings
        self.factory = make_session_factory(make_engine(settings))
        self.watch = watch

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        up = GaugeMetricFamily("ryla_database_up", "1 when the scrape could read the database")
        try:
            with session_scope(self.factory) as session:
                snap = db_snapshot(
                    session, now=utcnow(), heartbeat_seconds=self.settings.heartbeat_seconds
                )
        except Exception as exc:  # a scrape must answer even while the database is down
            if database_unreachable(exc):
                self.watch.failed(exc)  # told once per outage, not once per scrape
            else:
                log.exception("metrics: the database could not be read")
            up.add_metric([], 0)
            yield up
            return
        self.watch.answered()
        up.add_metric([], 1)
        yield up
        posts = GaugeMetricFamily(
            "ryla_posts", "Posts by influencer and state", labels=["influencer", "state"]
        )
        for (handle, state), count in sorted(snap.posts.items()):
            posts.add_metric([handle, state], count)
        yield posts
        yield CounterMetricFamily(
            "ryla_images_generated", "Images generated", value=snap.cost.images
        )
        yield CounterMetricFamily(
            "ryla_gpu_seconds", "GPU seconds spent generating", value=snap.cost.gpu_seconds
        )
        yield CounterMetricFamily(
            "ryla_gpu_cost",
            "GPU cost of the images, in RYLA_GPU_COST_PER_HOUR's unit",
            value=snap.cost.cost,
        )
        yield from _worker_families(snap)
        notes = GaugeMetricFamily(
            "ryla_notifications", "Notifications by status", labels=["status"]
        )
        for status, count in sorted(snap.notifications.items()):
            notes.add_metric([status], count)
        yield notes
        alerts = GaugeMetricFamily(
            "ryla_alerts_open", "Open conditions a person must fix", labels=["cause"]
        )
        for cause, count in sorted(snap.open_alerts.items()):
            alerts.add_metric([cause], count)
        yield alerts


def _worker_families(snap: Any) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    labels = ["name", "role", "queues"]
    age = GaugeMetricFamily(
        "ryla_worker_last_seen_seconds", "Seconds since a heartbeat", labels=labels
    )
    up = GaugeMetricFamily("ryla_worker_up", "1 while a process sends heartbeats", labels=labels)
    for seen in snap.workers:
        key = [seen.name, seen.role, seen.queues]
        age.add_metric(key, seen.age(snap.now))
        up.add_metric(key, 1 if seen.alive else 0)
    yield age
    yield up


class _Queues:
    """Messages waiting in each queue, asked of the broker at scrape time."""

    def __init__(self, app: Celery, watch: Watch) -> None:
        self.app = app
        self.watch = watch

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("ryla_broker_up", "1 when the scrape could read the broker")
        depth = GaugeMetricFamily(
            "ryla_queue_depth", "Messages waiting in a queue", labels=["queue"]
        )
        try:
            with self.app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
                channel = conn.default_channel
                for queue in QUEUES:
                    declared = channel.queue_declare(queue=queue, durable=True, auto_delete=False)
                    depth.add_metric([queue], declared.message_count)
        except Exception as exc:  # kombu raises a zoo of transport errors
            self.watch.failed(exc)  # told once per outage, not once per scrape
            up.add_metric([], 0)
            yield up
            return
        self.watch.answered()
        up.add_metric([], 1)
        yield up
        yield depth


def metrics_registry(
    settings: Settings,
    *,
    app: Celery | None = None,
    watches: dict[str, Watch] | None = None,
) -> CollectorRegistry:
    """A registry holding the workers' merged files, the database and the broker. ``watches``:
    the serving process's own "database" and "broker" watches, so an outage a scrape meets is
    told once by the process, however often it is scraped."""
    from prometheus_client import CollectorRegistry

    from tasks.app import create_app

    watches = watches or {}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(settings))
    registry.register(_Database(settings, watches.get("database") or Watch("database")))
    registry.register(
        _Queues(app or create_app(settings), watches.get("broker") or Watch("broker"))
    )
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_metrics(
    registry: CollectorRegistry, *, authorization: str, token: str
) -> tuple[int, bytes, str]:
    """(HTTP status, body, content type) for a GET /metrics: any web framework can answer it.

    With ``token`` (RYLA_METRICS_TOKEN) set, only ``Authorization: Bearer <token>`` is served.
    """
    if token and not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        return 401, b"bearer token needed\n", "text/plain; charset=utf-8"
    body, content_type = render_metrics(registry)
    return 200, body, content_type


def metrics_wsgi_app(settings: Settings) -> Callable[..., Any]:
    from prometheus_client import make_wsgi_app

    return make_wsgi_app(metrics_registry(settings))


def metrics_asgi_app(settings: Settings) -> Callable[..., Any]:
    """For the Studio: ``app.mount("/metrics", metrics_asgi_app(settings))``."""
    from prometheus_client import make_asgi_app

    return make_asgi_app(metrics_registry(settings))
