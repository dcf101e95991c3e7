"""Outages of the database and the broker, ridden out by real workers and a real beat.

Each test runs its own PostgreSQL cluster and redis-server on spare ports (stopping them
disturbs no one else), posts due over about 40 s, and one outage in the middle. Every post must
reach the webhook under exactly one attempt id, none may be lost, and none may be later than
the outage plus 30 s; no try may be spent on waiting.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from models import Post, PostEvent, PostStatus, PublishAttempt, TargetKind, utcnow
from pipeline.db import session_scope
from pipeline.publishers.targets import TargetIn, create_target
from tests.conftest import add_influencer, add_post
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.conftest import Backend, Processes, open_backend, service_missing
from tests.integration.servers import ThrowawayPostgres, ThrowawayRedis

pytestmark = pytest.mark.integration
S = PostStatus
POSTS = 10
SPACING = 4.0  # seconds between due times: the posts fall due across ~40 s
OUTAGE_AT = 8.0  # seconds after the first post is due
OUTAGE = 30.0
LATE_BEYOND_OUTAGE = 30.0
BEAT, IO_WORKER = "beat*", "worker*queues-io*"


@dataclass
class World:
    pg: ThrowawayPostgres
    redis: ThrowawayRedis
    backend: Backend
    procs: Processes
    receiver: WebhookReceiver

    def log(self, pattern: str) -> str:
        """The logs of the processes whose log file names match ``pattern``."""
        paths = sorted(self.backend.logs.glob(f"{pattern}.log"))
        return "\n".join(path.read_text(errors="replace") for path in paths)


def _servers() -> tuple[ThrowawayPostgres, ThrowawayRedis]:
    try:
        pg = ThrowawayPostgres()
    except (OSError, RuntimeError) as exc:
        service_missing("the PostgreSQL server binaries (initdb, pg_ctl)", exc)
    try:
        return pg, ThrowawayRedis()
    except (OSError, RuntimeError) as exc:
        pg.remove()
        service_missing("redis-server", exc)
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    pg, redis_server = _servers()
    with psycopg.connect(pg.url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE DATABASE ryla")
    key = secrets.token_urlsafe(24)
    env = {
        "RYLA_DATA_DIR": str(tmp_path / "data"),
        "RYLA_DATABASE_URL": pg.url.rsplit("/", 1)[0] + "/ryla",
        "RYLA_BROKER_URL": redis_server.url,
        "RYLA_SECRET_KEY": secrets.token_urlsafe(32),
        "RYLA_GENERATOR": "preview",
        "RYLA_TICK_SECONDS": "1",
        # The production lease: recovery must not come from leases running out.
        "RYLA_LEASE_SECONDS": "600",
    }
    backend, engine = open_backend("throwaway", env, tmp_path / "logs")
    factory, settings = backend.factory, backend.settings
    procs = Processes(backend)
    try:
        with WebhookReceiver(signing_key=key) as receiver:
            secret = {"url": receiver.url, "signing_key": key}
            with session_scope(factory) as s:
                add_influencer(s)
                # The workers draw previews: only a test target may take them (issue 10).
                hook = TargetIn("hook", TargetKind.WEBHOOK, {}, secret, accept_previews=True)
                create_target(session=s, settings=settings, handle="mia", data=hook, now=utcnow())
            try:
                yield World(pg, redis_server, backend, procs, receiver)
            finally:
                procs.stop()
    finally:
        engine.dispose()
        redis_server.remove()
        pg.remove()


def _start(world: World) -> None:
    world.procs.worker("gpu,cpu", concurrency=1)
    world.procs.worker("io", concurrency=2)
    world.procs.start("beat", ready="beat: ticking")


def _due_posts(world: World) -> tuple[list[int], datetime]:
    """Posts due every few seconds from now on; every other one generated a minute ahead, so
    its publish is claimed early and waits inside the io worker as a delayed message."""
    first = utcnow() + timedelta(seconds=4)
    with session_scope(world.backend.factory) as s:
        ids = [
            add_post(s, at=first + timedelta(seconds=i * SPACING), lead=i % 2, caption_text=f"#{i}")
            for i in range(POSTS)
        ]
    return ids, first


def _sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - utcnow()).total_seconds()))


def _outage(stop: Callable[[], None], start: Callable[[], None], first: datetime) -> datetime:
    """Stop a server OUTAGE_AT seconds after the first post is due; start it OUTAGE s later.
    Returns when it was back."""
    _sleep_until(first + timedelta(seconds=OUTAGE_AT))
    stop()
    time.sleep(OUTAGE)
    start()
    return utcnow()


def _wait_published(world: World, ids: list[int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with world.backend.factory() as s:
            done = s.scalar(
                select(func.count()).where(Post.id.in_(ids), Post.status == S.PUBLISHED)
            )
        if done == len(ids):
            return
        time.sleep(0.5)
    with world.backend.factory() as s:
        states = dict(s.execute(select(Post.id, Post.status).where(Post.id.in_(ids))).all())
    pytest.fail(f"not all published: {states}\n{world.procs.logs()}")


def _assert_once_and_on_time(world: World, ids: list[int], back: datetime) -> None:
    """Each post reached the webhook under one attempt id and moved to published once, no
    later than its due time (or the outage's end) plus 30 s, and without spending a try."""
    with world.backend.factory() as s:
        rows = s.execute(
            select(Post.id, Post.publish_at, Post.published_at).where(Post.id.in_(ids))
        )
        late = {
            pid: (done - max(due, back)).total_seconds()
            for pid, due, done in rows
            if done - max(due, back) > timedelta(seconds=LATE_BEYOND_OUTAGE)
        }
        published = Counter(
            s.scalars(select(PostEvent.post_id).where(PostEvent.to_status == S.PUBLISHED))
        )
        attempts = Counter(s.scalars(select(PublishAttempt.post_id)))
        reconciled = s.scalar(select(func.count()).where(PostEvent.detail.like("lease expired%")))
    delivered = Counter(payload["post_id"] for payload in world.receiver.accepted.values())
    once = dict.fromkeys(ids, 1)
    assert dict(delivered) == once, f"webhook deliveries per post: {delivered}"
    assert dict(published) == once and dict(attempts) == once
    assert not late, f"seconds late beyond the outage + 30 s: {late}\n{world.procs.logs()}"
    assert reconciled == 0  # nothing waited for a lease to run out, so no try was spent


def test_a_30_s_database_outage_loses_and_doubles_nothing(world: World) -> None:
    _start(world)
    ids, first = _due_posts(world)
    back = _outage(world.pg.stop, world.pg.start, first)
    _wait_published(world, ids)
    _assert_once_and_on_time(world, ids, back)
    for name in (BEAT, IO_WORKER):  # the two that needed the database while it was away
        log = world.log(name)
        assert "database unreachable, retrying" in log and "database back after" in log, name
    assert world.log(BEAT).count("database unreachable, retrying") == 1


def test_a_30_s_broker_outage_loses_and_doubles_nothing(world: World) -> None:
    _start(world)
    ids, first = _due_posts(world)
    back = _outage(world.redis.stop, world.redis.start, first)
    _wait_published(world, ids)
    _assert_once_and_on_time(world, ids, back)
    for name in (BEAT, IO_WORKER):
        log = world.log(name)
        assert log.count("broker unreachable, retrying") == 1 and "broker back after" in log, name
    assert "Trying again in" not in world.log("worker*")  # one line per outage, not per try


def test_a_wiped_broker_is_rebuilt_from_the_database(world: World) -> None:
    _start(world)
    ids, first = _due_posts(world)
    _sleep_until(first + timedelta(seconds=OUTAGE_AT))
    world.redis.wipe()
    wiped = utcnow()
    _wait_published(world, ids)
    _assert_once_and_on_time(world, ids, wiped)
    assert "the broker lost its messages" in world.log(BEAT)


def _kill_io_worker(world: World) -> None:
    """SIGKILL the io worker, with the claimed-ahead publishes it held, and start another (as
    docker's restart policy or `ryla run` would)."""
    io_worker = next(proc for proc, log in world.procs.procs if "queues-io" in log.name)
    os.kill(io_worker.pid, signal.SIGKILL)
    io_worker.wait(10)
    world.procs.worker("io", concurrency=2)


@pytest.mark.parametrize("order", ["killed-then-wiped", "wiped-then-killed"])
def test_a_wiped_broker_and_a_killed_io_worker_lose_nothing(world: World, order: str) -> None:
    _start(world)
    ids, first = _due_posts(world)
    # Killed between two publishes: a publish cut off halfway is the publishing issue's case.
    _wait_published(world, ids[:2])
    if order == "killed-then-wiped":
        _wait_published(world, ids[:4])
        _sleep_until(first + timedelta(seconds=3 * SPACING + 2))
        _kill_io_worker(world)
        world.redis.wipe()  # and the copies Redis kept of the publishes it held
        wiped = utcnow()
    else:
        # The beat sends the unstarted claims again (to the io worker, as delayed messages),
        # then the io worker dies with them: their claims' short grace brings them back.
        _sleep_until(first + timedelta(seconds=2 * SPACING + 1))
        world.redis.wipe()
        wiped = utcnow()
        _wait_published(world, ids[:4])
        _sleep_until(first + timedelta(seconds=3 * SPACING + 2))
        assert "the broker lost its messages" in world.log(BEAT)  # the re-send went out
        _kill_io_worker(world)
    _wait_published(world, ids)
    _assert_once_and_on_time(world, ids, wiped)
    assert "the broker lost its messages" in world.log(BEAT)
    if order == "wiped-then-killed":
        # Back through the claims' grace (sent again under their token), not a lease's end.
        assert "claim(s) no worker started in time" in world.log(BEAT)
        _assert_back_within_a_tick_of_the_grace(world, ids[5::2])


def _assert_back_within_a_tick_of_the_grace(world: World, ids: list[int]) -> None:
    """The publishes the killed worker held were published no later than their claim's grace
    (RYLA_CLAIM_GRACE_SECONDS) plus a few ticks past their time."""
    bound = world.backend.settings.claim_grace_seconds + 10 * world.backend.settings.tick_seconds
    with world.backend.factory() as s:
        rows = s.execute(
            select(Post.id, Post.publish_at, Post.published_at).where(Post.id.in_(ids))
        )
        late = {pid: (done - due).total_seconds() for pid, due, done in rows}
    assert late and all(seconds <= bound for seconds in late.values()), (late, bound)
