"""``ryla worker|beat|run|serve``: the long-running processes.

Each logs what it does; Ctrl-C (SIGINT) or SIGTERM stops it cleanly. None exits because the
database or the broker went away: they wait, retry, and say so (see ``tasks.app``).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

import click
from sqlalchemy.pool import NullPool

from admin.context import BadInput, CliContext
from admin.processes import EMBEDDED_WORKERS, Supervisor, beat_command, worker_command
from pipeline.db import make_engine
from pipeline.generators import active_generator
from pipeline.health import Watch, database_unreachable, probe_database, retry_delay
from pipeline.settings import LogFormat, Settings

__all__ = ["beat", "run", "serve", "worker"]

log = logging.getLogger(__name__)


def _say(settings: Settings, line: str) -> None:
    """A start-up line for people; with RYLA_LOG_FORMAT=json it is a log line like every other,
    so a log shipper reads JSON only."""
    if settings.log_format is LogFormat.JSON:
        log.info(line)
    else:
        click.echo(line)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.pass_obj
def serve(obj: CliContext, host: str, port: int) -> None:
    """The Content Studio (web pages and /api/v1, for signed-in users and tokens) and the
    signed media URLs under RYLA_PUBLIC_BASE_URL that Instagram fetches."""
    import socket

    import uvicorn

    from admin.studio.app import create_app

    obj.log_progress()
    if obj.settings.is_sqlite:
        # Before `ryla init` nothing is made (no secret key); a server database may still be
        # starting, and the studio answers 503 until it does.
        obj.require_schema()
    # Bound before the line below is printed: whoever waits for it can connect at once.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a kept-alive client must not wait out a delayed ACK
    # (40 ms) between a response's header and body writes.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BadInput(
            f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port"
        ) from None
    sock.listen(128)
    app = create_app(obj.settings)
    _say(
        obj.settings,
        f"serving media and the studio on http://{host}:{port} "
        f"(public: {obj.settings.public_base_url})",
    )
    config = uvicorn.Config(app, log_level="warning", proxy_headers=True, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


@click.command()
@click.option(
    "--queues",
    default="gpu,cpu,io",
    show_default=True,
    help="Comma-separated queues to consume: gpu, cpu, io.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes (gpu workers always use 1).",
)
@click.option(
    "--gpu",
    type=click.IntRange(0, 63),
    default=None,
    help="Pin this worker to one GPU (sets CUDA_VISIBLE_DEVICES).",
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo"]),
    default="prefork",
    show_default=True,
    help="prefork enforces time limits; solo runs in-process.",
)
@click.option("--name", default="ryla", show_default=True, help="Worker name (name@host).")
@click.pass_obj
def worker(
    obj: CliContext, queues: str, concurrency: int | None, gpu: int | None, pool: str, name: str
) -> None:
    """Run a Celery worker on the given queues (one per GPU for the gpu queue)."""
    obj.log_progress()
    from tasks.app import QUEUES
    from tasks.worker import start_worker

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in wanted if q not in QUEUES]
    if unknown or not wanted:
        raise BadInput(
            f"unknown queue {unknown[0] if unknown else queues!r}: choose from {', '.join(QUEUES)}"
        )
    if not _schema_when_reachable(obj, _stop_on_signals()):  # Celery sets its own handlers
        return
    if "gpu" in wanted:
        _say(obj.settings, active_generator(obj.settings).line)
    else:
        _say(obj.settings, "generator: none here (this worker does not take the gpu queue)")
    start_worker(
        obj.settings, queues=wanted, concurrency=concurrency, gpu=gpu, pool=pool, name=name
    )


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@click.command()
@click.pass_obj
def beat(obj: CliContext) -> None:
    """Run the beat: expand calendars, reconcile leases, dispatch due work (one per cluster)."""
    obj.log_progress()
    from tasks.beat import run_beat

    stop = _stop_on_signals()
    if not _schema_when_reachable(obj, stop):
        return
    run_beat(obj.app, obj.settings, stop=stop)


@click.command()
@click.pass_obj
def run(obj: CliContext) -> None:
    """Everything on this machine in one command (database, workers, beat) until Ctrl-C.

    A worker or the beat that exits is started again after a back-off, and says so.
    """
    obj.log_progress()
    from migrations import migrate

    stop = _stop_on_signals()
    if not _when_the_database_answers(lambda: migrate(obj.settings), stop):
        return
    _say(obj.settings, active_generator(obj.settings).line)
    commands = {f"worker {spec.name}": worker_command(spec) for spec in EMBEDDED_WORKERS}
    supervisor = Supervisor({**commands, "beat": beat_command()})
    _say(obj.settings, f"running on {obj.settings.data_dir} — Ctrl-C to stop")
    try:
        supervisor.run(stop)
    finally:
        supervisor.stop()


def _when_the_database_answers(action: Callable[[], None], stop: threading.Event) -> bool:
    """Run ``action``, waiting for the database as long as it takes (one line when it is away,
    one when it is back); False when stopped first."""
    database = Watch("database")
    tries = 0
    while not stop.is_set():
        try:
            action()
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            database.failed(exc)
            stop.wait(retry_delay(tries))
            tries += 1
        else:
            database.answered()
            return True
    return False


def _schema_when_reachable(obj: CliContext, stop: threading.Event) -> bool:
    """A process started while the database is away waits for it, then checks the schema
    (before ``ryla init`` that is one error line); False when stopped while waiting."""
    if not obj.settings.is_sqlite:  # a SQLite probe would create the file ``ryla init`` makes
        engine = make_engine(obj.settings, poolclass=NullPool)  # nothing pooled for the forks
        try:
            if not _when_the_database_answers(probe_database(engine), stop):
                return False
        finally:
            engine.dispose()
    obj.require_schema()
    return True
