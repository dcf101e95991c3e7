"""``ryla run``'s supervisor: a process that exits is started again after a growing back-off,
each exit and restart is logged, and stopping ends every process."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import pytest

from admin.processes import Supervisor

CRASHES = [sys.executable, "-c", "import sys; sys.exit(3)"]
RUNS = [sys.executable, "-c", "import time; time.sleep(60)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_for_exits(supervisor: Supervisor) -> None:
    for child in supervisor.children:
        if child.restart_at is None and child.proc is not None and child.name == "crashes":
            child.proc.wait(10)


def test_a_crashed_process_is_started_again_after_a_growing_back_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    supervisor = Supervisor({"crashes": CRASHES, "runs": RUNS}, clock=clock, first=1, cap=4)
    [crashes, runs] = supervisor.children
    supervisor.start()
    try:
        delays = []
        with caplog.at_level(logging.INFO, logger="admin.processes"):
            for _ in range(4):
                wait_for_exits(supervisor)
                supervisor.check()  # notes the exit
                assert crashes.restart_at is not None
                delays.append(crashes.restart_at - clock.now)
                first_pid = crashes.proc.pid if crashes.proc else 0
                clock.now = crashes.restart_at
                supervisor.check()  # starts it again
                assert crashes.proc is not None and crashes.proc.pid != first_pid
        assert delays == [1, 2, 4, 4]  # doubling, capped
        assert runs.proc is not None and runs.proc.poll() is None  # the healthy one untouched
        lines = [r.getMessage() for r in caplog.records]
        assert lines[0] == "crashes exited with status 3 after 0 s; starting it again in 1 s"
        assert lines[1].startswith("crashes started again (pid ")
    finally:
        supervisor.stop(timeout=5)
    assert all(c.proc is not None and c.proc.poll() is not None for c in supervisor.children)


def test_the_back_off_starts_over_once_a_process_has_run_steadily(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    supervisor = Supervisor({"crashes": CRASHES}, clock=clock, first=1, cap=60, steady=30)
    [crashes] = supervisor.children
    supervisor.start()
    try:
        for expected, ran in ((1, 0), (2, 0), (1, 45)):  # the third time it ran 45 s first
            clock.now += ran
            wait_for_exits(supervisor)
            supervisor.check()
            assert crashes.restart_at is not None
            assert crashes.restart_at - clock.now == expected
            clock.now = crashes.restart_at
            supervisor.check()
    finally:
        supervisor.stop(timeout=5)


def test_a_killed_process_is_named_by_its_signal(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor({"worker io": RUNS}, clock=Clock())
    [worker] = supervisor.children
    supervisor.start()
    try:
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        with caplog.at_level(logging.ERROR, logger="admin.processes"):
            supervisor.check()
        assert caplog.records[0].getMessage().startswith("worker io was killed by SIGKILL after")
    finally:
        supervisor.stop(timeout=5)


def test_stopping_ends_every_process() -> None:
    supervisor = Supervisor({"a": RUNS, "b": CRASHES})
    stop = threading.Event()
    runner = threading.Thread(target=supervisor.run, args=(stop,), kwargs={"poll": 0.05})
    runner.start()
    try:
        stop.wait(0.5)
    finally:
        stop.set()
        runner.join(10)
        supervisor.stop(timeout=5)
    assert not runner.is_alive()
    assert all(c.proc is not None and c.proc.poll() is not None for c in supervisor.children)
