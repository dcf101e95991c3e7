"""Starting a Celery worker from settings, and warming the generator in the process that runs.

The GPU pipeline loads after the fork, in the child (``worker_process_init``), never in the
prefork parent; a gpu worker runs one process with prefetch 1.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings

from celery.exceptions import CPendingDeprecationWarning
from celery.signals import celeryd_after_setup, worker_process_init, worker_ready, worker_shutdown

from pipeline.observe.metrics_dir import use_metrics_dir
from pipeline.settings import LogFormat, Settings
from tasks.app import create_app
from tasks.broker import OutageLogFilter
from tasks.heartbeat import Heartbeat

__all__ = ["start_worker"]

log = logging.getLogger(__name__)
_WARM_ENV = "RYLA_WARM_GENERATOR"
GPU_LOAD_SECONDS = 900.0  # loading 20 GB of weights from a cold disk can take minutes


def start_worker(
    settings: Settings,
    *,
    queues: list[str],
    concurrency: int | None,
    gpu: int | None,
    pool: str,
    name: str,
) -> None:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before anything can touch CUDA
    _observe(settings, name=f"{name}@{socket.gethostname()}", queues=queues)
    if "gpu" in queues:
        concurrency = 1
        os.environ[_WARM_ENV] = "1"
    app = create_app(settings)
    _one_line_per_outage()
    if "gpu" in queues:
        # The model loads in the child before it reports "up"; Celery's default 4 s would kill
        # every replacement child (after a time limit or a crash) in a loop.
        app.conf.worker_proc_alive_timeout = GPU_LOAD_SECONDS
    argv = [
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency or 2),
        "--pool",
        pool,
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if settings.broker_url.startswith("filesystem"):
        argv.append("--without-heartbeat")  # broker heartbeats need a broadcast channel
    if settings.log_format is LogFormat.JSON:
        argv.insert(0, "--quiet")  # no banner: a log shipper gets JSON lines only
    if pool == "solo":
        worker_ready.connect(_warm_generator, weak=False)
        _one_thread_per_process()
    app.worker_main(argv)


def _observe(settings: Settings, *, name: str, queues: list[str]) -> None:
    """Metrics files and the heartbeat row, set up before Celery starts (and forks)."""
    use_metrics_dir(settings.metrics_dir)
    from tasks.metrics import install_step_metrics

    install_step_metrics()
    heartbeat = Heartbeat(settings, name=name, role="worker", queues=",".join(queues)).start()

    def ready(**_: object) -> None:
        heartbeat.state = "ready"

    def shutdown(**_: object) -> None:
        heartbeat.stop()

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(shutdown, weak=False)


def _one_line_per_outage() -> None:
    logging.getLogger("celery.worker.consumer.consumer").addFilter(OutageLogFilter())
    celeryd_after_setup.connect(_quiet_cancel_warning, weak=False)


def _quiet_cancel_warning(**_: object) -> None:
    # Celery warns at every lost connection that 6.0 will cancel late-ack tasks then; the app
    # sets that off on purpose (see tasks.app), so the warning says nothing new. Added after
    # Celery's logging set-up, which asks for all of its warnings "always".
    warnings.filterwarnings(
        "ignore",
        message=r"\s*In Celery 5\.1 we introduced an optional breaking change",
        category=CPendingDeprecationWarning,
    )


@worker_process_init.connect
def _warm_in_child(**_: object) -> None:
    _one_thread_per_process()
    _warm_generator()


def _one_thread_per_process() -> None:
    # Prefork already runs one process per core: OpenCV's own thread pool would oversubscribe.
    import cv2

    cv2.setNumThreads(1)


def _warm_generator(**_: object) -> None:
    if os.environ.get(_WARM_ENV) != "1":
        return
    from tasks.runtime import current_runtime

    started = time.perf_counter()
    try:
        generator = current_runtime().generator
        load = getattr(generator, "load", None)
        if callable(load):
            load()
    except Exception as exc:  # the first task will fail the post with this reason
        log.error("generator could not be warmed: %s", exc)
        return
    log.info(
        "generator %s warm in %.2f s (pid %d)",
        generator.name,
        time.perf_counter() - started,
        os.getpid(),
    )
