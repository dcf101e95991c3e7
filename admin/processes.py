"""Starting and stopping worker processes for the one-command modes (``run`` and ``demo``).

Each worker is a real ``ryla worker`` process; stopping asks for a warm shutdown first.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WorkerSpec", "start_workers", "stop_workers"]


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    queues: str
    concurrency: int


EMBEDDED_WORKERS = (
    WorkerSpec("gpu", "gpu", 1),  # one process holds the (warm) generator
    WorkerSpec("cpu-io", "cpu,io", 2),
)


def start_workers(
    specs: tuple[WorkerSpec, ...], *, log_dir: Path | None = None
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for spec in specs:
        cmd = [
            sys.executable,
            "-m",
            "admin",
            "worker",
            "--queues",
            spec.queues,
            "--concurrency",
            str(spec.concurrency),
            "--name",
            spec.name,
        ]
        out = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            out = (log_dir / f"worker-{spec.name}.log").open("ab")
        procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None))
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: Celery finishes the task in hand, then exits
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
