"""The one-command modes a creator starts with: ``ryla demo`` and ``ryla run`` (Ctrl-C ends it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import PostStatus, utcnow
from pipeline.db import session_scope
from tests.conftest import add_influencer, add_post
from tests.integration.conftest import Backend, Processes
from tests.integration.test_chain import wait_for

pytestmark = pytest.mark.integration


def ryla_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RYLA_")}
    return {**env, "RYLA_DATA_DIR": str(data_dir), "RYLA_GENERATOR": "preview"}


def test_the_demo_publishes_its_posts_in_its_own_folder_and_leaves_its_calendar_paused(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "admin", "demo", "--posts", "2"],
        env=ryla_env(data),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2/2 posts published to the outbox" in done.stdout
    assert "time to first post:" in done.stdout
    assert "The demo ran in its own data folder" in done.stdout
    assert "Its calendar ryla.demo/daily is paused" in done.stdout
    folders = sorted((data / "demo" / "outbox" / "ryla.demo").iterdir())
    assert len(folders) == 2 and all((f / "caption.txt").is_file() for f in folders)
    assert not (data / "ryla.db").exists()  # the pipeline's own database was never touched
    listed = subprocess.run(
        [sys.executable, "-m", "admin", "--data-dir", str(data / "demo"), "calendar", "list"],
        env=ryla_env(data),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "paused" in listed.stdout, listed.stdout


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_run_works_until_ctrl_c_and_leaves_no_worker_behind(
    backend: Backend, processes: Processes
) -> None:
    with session_scope(backend.factory) as s:
        add_influencer(s)
        post_id = add_post(s, at=utcnow())
    processes.start("run", ready="running on")
    proc, _ = processes.procs[-1]
    wait_for(backend, processes, [post_id], {PostStatus.PUBLISHED})
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    time.sleep(0.5)
    assert _workers_of(backend) == []


def _workers_of(backend: Backend) -> list[str]:
    """Worker processes still running with this test's data folder in their environment."""
    found = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            environ = (proc_dir / "environ").read_bytes()
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if backend.env["RYLA_DATA_DIR"].encode() in environ and " worker " in cmdline:
            found.append(cmdline)
    return found
