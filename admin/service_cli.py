"""``ryla worker|beat|run|serve``: the long-running processes.

Each logs what it does; Ctrl-C (SIGINT) or SIGTERM stops it cleanly. None exits because the
database or the broker went away: they wait, retry, and say so (see ``tasks.app``).
"""

from __future__ import annotations

import signal
import threading

import click

from admin.context import BadInput, CliContext
from admin.processes import EMBEDDED_WORKERS, Supervisor, beat_command, worker_command
from pipeline.health import Watch, database_unreachable, retry_delay
from pipeline.settings import Settings

__all__ = ["beat", "run", "serve", "worker"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.pass_obj
def serve(obj: CliContext, host: str, port: int) -> None:
    """Serve media at signed URLs under RYLA_PUBLIC_BASE_URL, for Instagram to fetch."""
    from admin.media_server import make_media_server

    obj.log_progress()
    health = obj.health_check(announce=True)
    server = make_media_server(obj.settings, host, port, health=health.report)
    click.echo(f"serving media on http://{host}:{port} (public: {obj.settings.public_base_url})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


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

    run_beat(obj.app, obj.settings, stop=_stop_on_signals())


@click.command()
@click.pass_obj
def run(obj: CliContext) -> None:
    """Everything on this machine in one command (database, workers, beat) until Ctrl-C.

    A worker or the beat that exits is started again after a back-off, and says so.
    """
    obj.log_progress()
    stop = _stop_on_signals()
    if not _migrate_when_reachable(obj.settings, stop):
        return
    commands = {f"worker {spec.name}": worker_command(spec) for spec in EMBEDDED_WORKERS}
    supervisor = Supervisor({**commands, "beat": beat_command()})
    click.echo(f"running on {obj.settings.data_dir} — Ctrl-C to stop")
    try:
        supervisor.run(stop)
    finally:
        supervisor.stop()


def _migrate_when_reachable(settings: Settings, stop: threading.Event) -> bool:
    """Migrate, waiting for the database as long as it takes; False when stopped first."""
    from migrations import migrate

    database = Watch("database")
    tries = 0
    while not stop.is_set():
        try:
            migrate(settings)
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
