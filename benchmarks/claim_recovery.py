"""Claimed-ahead publishes when the io worker dies: how late each post goes out.

Posts are claimed up to RYLA_PUBLISH_AHEAD_SECONDS early and wait inside the io worker as ETA
messages. This kills that worker (kill -9, with its children) while it holds them and measures,
with the default tick, claim grace and lease, how late each post is published: with no kill,
with a new worker started at once, and with one started a minute later (then lateness counts
from when the worker is back). Real processes: PostgreSQL, Redis, ``ryla serve``, gpu/cpu/io
workers, the beat, and the Graph API stand-in (``tests.fakes``) behind a test target.

Run ``python benchmarks/claim_recovery.py`` with PostgreSQL on 127.0.0.1:5432 (user postgres,
trust) and Redis (``--redis-url``, db 13 by default); prints a table, writes
``benchmarks/results/claim_recovery.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import redis
from sqlalchemy import select

from models import Post, PostStatus, utcnow
from pipeline.db import session_scope
from pipeline.publishers.targets import create_target
from pipeline.settings import Settings
from tests.conftest import add_influencer, add_post
from tests.fakes.graph_api import FakeGraphApi
from tests.integration.conftest import (
    Backend,
    Processes,
    free_port,
    fresh_database,
    open_backend,
    served_env,
)

RESULTS = Path(__file__).resolve().parent / "results" / "claim_recovery.json"
S = PostStatus


@contextmanager
def stack(tmp: Path, redis_url: str) -> Iterator[tuple[Backend, Processes]]:
    """The production shape on one machine, with every timing setting at its default."""
    db_url, drop = fresh_database()
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    env = served_env(tmp, db_url, redis_url, port)  # every timing setting at its default
    backend, engine = open_backend("postgres_redis", env, tmp / "logs")
    procs = Processes(backend)
    try:
        with FakeGraphApi(processing_seconds=0.2) as graph:
            _seed(backend, graph)
            procs.start("serve", "--port", str(port), ready="serving media")
            for queues in ("gpu", "cpu", "io"):
                procs.worker(queues, concurrency=1 if queues == "gpu" else 2)
            procs.start("beat")
            yield backend, procs
    finally:
        procs.stop()
        engine.dispose()
        drop()


def _seed(backend: Backend, graph: FakeGraphApi) -> None:
    with session_scope(backend.factory) as s:
        add_influencer(s)
        data = graph.target("mia-ig")  # accepting the previews the workers draw
        create_target(session=s, settings=backend.settings, handle="mia", data=data, now=utcnow())


def kill_tree(pid: int) -> None:
    parent = psutil.Process(pid)
    for proc in [*parent.children(recursive=True), parent]:
        proc.kill()
    parent.wait(10)


def run_scenario(
    backend: Backend, procs: Processes, *, posts: int, kill: bool, back_after: float
) -> dict[str, Any]:
    now = utcnow()
    with session_scope(backend.factory) as s:
        # Due 40-90 s from now, generated at once: every one is claimed ahead before the kill.
        ids = [
            add_post(s, at=now + timedelta(seconds=40 + 10 * i), lead=3, caption_text=f"{i}")
            for i in range(posts)
        ]
    _wait(backend, ids, _claimed_ahead, timeout=90)
    back = utcnow()
    if kill:
        io = _io_worker(procs)
        kill_tree(io.pid)
        procs.procs = [(p, log) for p, log in procs.procs if p is not io]
        time.sleep(back_after)
        procs.worker("io", concurrency=2)
        back = utcnow()
    found = _wait(backend, ids, lambda p: p.status is S.PUBLISHED, timeout=900)
    late = [(p.published_at - p.publish_at).total_seconds() for p in found if p.published_at]
    after_back = [
        (p.published_at - max(p.publish_at, back)).total_seconds() for p in found if p.published_at
    ]
    return {
        "posts": posts,
        "killed": kill,
        "worker_back_after_s": back_after if kill else None,
        "late_s": _spread(late),
        "after_worker_back_s": _spread(after_back),
        "late_s_all": [round(x, 2) for x in sorted(late)],
    }


def _io_worker(procs: Processes) -> Any:
    """The running ``ryla worker --queues io`` process."""
    for proc, _ in procs.procs:
        args = list(proc.args)  # type: ignore[arg-type]
        if proc.poll() is None and "--queues" in args and args[args.index("--queues") + 1] == "io":
            return proc
    raise RuntimeError("no io worker is running")


def _claimed_ahead(post: Post) -> bool:
    untaken = post.lease_owner is not None and not post.lease_owner.startswith("run-")
    return post.status is S.PUBLISHING and untaken


def _wait(backend: Backend, ids: list[int], done: Any, timeout: float) -> list[Post]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with backend.factory() as s:
            found = list(s.scalars(select(Post).where(Post.id.in_(ids))))
        if all(done(p) for p in found):
            return found
        time.sleep(0.25)
    raise TimeoutError(f"posts {ids} did not get there in {timeout} s")


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"defaults: tick {result['settings']['tick_seconds']} s, claim grace "
        f"{result['settings']['claim_grace_seconds']} s, lease {result['settings']['lease_s']} s"
    )
    print(f"{'scenario':<42} {'late median':>12} {'late max':>9} {'after back max':>15}")
    for name, row in result["scenarios"].items():
        print(
            f"{name:<42} {row['late_s']['median']:>10} s {row['late_s']['max']:>7} s "
            f"{row['after_worker_back_s']['max']:>13} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=6)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    defaults = Settings()
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "tick_seconds": defaults.tick_seconds,
            "claim_grace_seconds": defaults.claim_grace_seconds,
            "lease_s": defaults.lease_seconds,
            "publish_ahead_seconds": defaults.publish_ahead_seconds,
        },
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp), args.redis_url) as (b, procs):
        for name, kill, back_after in (
            ("no kill", False, 0.0),
            ("io worker killed, a new one at once", True, 0.0),
            ("io worker killed, a new one 60 s later", True, 60.0),
        ):
            row = run_scenario(b, procs, posts=args.posts, kill=kill, back_after=back_after)
            result["scenarios"][name] = row
            print(f"{name}: {row['late_s_all']}", flush=True)
    print_table(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
