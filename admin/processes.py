"""Starting, watching and stopping the processes of the one-command modes (``run`` and ``demo``).

Each worker (and, under ``run``, the beat) is a real ``ryla`` process; one that exits is
started again after a back-off; stopping asks for a warm shutdown first.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EMBEDDED_WORKERS",
    "Supervisor",
    "WorkerSpec",
    "beat_command",
    "start_workers",
    "stop_workers",
    "worker_command",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    queues: str
    concurrency: int


EMBEDDED_WORKERS = (
    WorkerSpec("gpu", "gpu", 1),  # one process holds the (warm) generator
    WorkerSpec("cpu-io", "cpu,io", 2),
)


def worker_command(spec: WorkerSpec) -> list[str]:
    return [
        sys.executable,
        "-m",
        "admin",
        "--log-tag",
        f"worker {spec.name}",
        "worker",
        "--queues",
        spec.queues,
        "--concurrency",
        str(spec.concurrency),
        "--name",
        spec.name,
    ]


def beat_command() -> list[str]:
    return [sys.executable, "-m", "admin", "--log-tag", "beat", "beat"]


def _launch(cmd: Sequence[str], name: str, log_dir: Path | None) -> subprocess.Popen[bytes]:
    out = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        out = (log_dir / f"{name}.log").open("ab")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None)


def start_workers(
    specs: tuple[WorkerSpec, ...], *, log_dir: Path | None = None
) -> list[subprocess.Popen[bytes]]:
    return [_launch(worker_command(s), f"worker-{s.name}", log_dir) for s in specs]


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


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class _Child:
    name: str
    cmd: Sequence[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0  # exits in a row, each soon after its start: the back-off's step
    restart_at: float | None = None


class Supervisor:
    """Keeps a set of processes running: one that exits (a crash, a kill, an OOM) is started
    again after a back-off that doubles from ``first`` to ``cap`` seconds while it keeps
    failing fast, and starts over once it has run ``steady`` seconds. Each exit and restart is
    logged. ``stop()`` ends them all, a warm shutdown first."""

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        *,
        log_dir: Path | None = None,
        first: float = 1.0,
        cap: float = 60.0,
        steady: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [_Child(name, cmd) for name, cmd in commands.items()]
        self._log_dir = log_dir
        self._first, self._cap, self._steady = first, cap, steady
        self._clock = clock

    def start(self) -> None:
        for child in self.children:
            self._start(child)
            assert child.proc is not None
            log.info("%s started (pid %d)", child.name, child.proc.pid)

    def _start(self, child: _Child) -> None:
        child.proc = _launch(child.cmd, child.name, self._log_dir)
        child.started, child.restart_at = self._clock(), None

    def check(self) -> None:
        """One look at every process: note who exited, start who is due again."""
        now = self._clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                    assert child.proc is not None
                    log.warning("%s started again (pid %d)", child.name, child.proc.pid)
            elif child.proc is not None and (code := child.proc.poll()) is not None:
                self._schedule(child, code, now)

    def _schedule(self, child: _Child, code: int, now: float) -> None:
        ran = now - child.started
        child.quick_exits = child.quick_exits + 1 if ran < self._steady else 1
        delay = min(self._cap, self._first * 2 ** (child.quick_exits - 1))
        child.restart_at = now + delay
        log.error(
            "%s %s after %.0f s; starting it again in %.0f s",
            child.name,
            _how_it_ended(code),
            ran,
            delay,
        )

    def run(self, stop: threading.Event, poll: float = 0.5) -> None:
        """Start everything, then keep it running until ``stop`` is set."""
        self.start()
        while not stop.wait(poll):
            self.check()

    def stop(self, timeout: float = 15.0) -> None:
        stop_workers([c.proc for c in self.children if c.proc is not None], timeout)
