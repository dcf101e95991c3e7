"""Publishing to Instagram through real workers, against the project's fake Graph API.

For each injected fault, every due post ends published exactly once (on the fake server and in
the database) or in a clear, explained state. The fake downloads each image from ``ryla serve``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models import Post, PostStatus, PublishAttempt, PublishTarget, utcnow
from pipeline.db import session_scope
from pipeline.publishers.targets import create_target
from pipeline.steps.triggers import cancel
from tests.conftest import add_influencer, add_post
from tests.fakes.graph_api import FakeGraphApi
from tests.integration.conftest import (
    Backend,
    Processes,
    flushed_redis,
    free_port,
    fresh_database,
    open_backend,
    served_env,
)

pytestmark = pytest.mark.integration
S = PostStatus
SETTLED = {S.PUBLISHED, S.FAILED, S.UNKNOWN}


@dataclass
class Stack:
    backend: Backend
    graph: FakeGraphApi
    procs: Processes


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("instagram")
    db_url, drop = fresh_database()
    port = free_port()
    env = served_env(tmp, db_url, flushed_redis(), port) | {
        "RYLA_TICK_SECONDS": "1",
        "RYLA_LEASE_SECONDS": "60",
        "RYLA_MAX_ATTEMPTS": "4",
        "RYLA_GRAPH_POLL_FIRST_DELAY": "0.05",
        "RYLA_GRAPH_POLL_MAX_DELAY": "0.2",
    }
    backend, engine = open_backend("postgres_redis", env, tmp / "logs")
    with FakeGraphApi(processing_seconds=0.2) as graph:
        with session_scope(backend.factory) as s:
            add_influencer(s)
            create_target(
                session=s,
                settings=backend.settings,
                handle="mia",
                data=graph.target("mia-ig"),
                now=utcnow(),
            )
        procs = Processes(backend)
        procs.start("serve", "--port", str(port), ready="serving media")
        procs.worker("gpu", concurrency=1)
        procs.worker("cpu,io", concurrency=2)
        procs.start("beat")
        try:
            yield Stack(backend, graph, procs)
        finally:
            procs.stop()
            engine.dispose()
            drop()


def publish_one(stack: Stack, arm: Callable[[FakeGraphApi], None]) -> tuple[Post, int]:
    """Arm a fault, plan a post due now, wait until it settles; return it and its publishes."""
    stack.graph.clear_faults()
    arm(stack.graph)
    marker = uuid.uuid4().hex[:8]
    with session_scope(stack.backend.factory) as s:
        post_id = add_post(s, at=utcnow(), caption_text=f"case {marker}")
    post = wait_until(stack, post_id, lambda p: p.status in SETTLED)
    copies = sum(marker in p.caption for p in stack.graph.published)
    return post, copies


FAULTS: dict[str, Callable[[FakeGraphApi], None]] = {
    "no fault": lambda g: None,
    "HTTP 500 on container creation": lambda g: g.fail_next(2, route="create"),
    "HTTP 500 on media_publish": lambda g: g.fail_next(1, route="publish"),
    "slow answers": lambda g: g.slow_next(2, seconds=1.0, route="status"),
    "connection dropped after a successful publish": lambda g: g.drop_after_publish(),
    "container ends in ERROR": lambda g: g.containers_end_in("ERROR", subcode=2207001),
    "container EXPIRED": lambda g: g.containers_end_in("EXPIRED"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_post_is_published_exactly_once(stack: Stack, fault: str) -> None:
    post, copies = publish_one(stack, FAULTS[fault])
    assert (post.status, copies) == (S.PUBLISHED, 1), post.last_error
    assert post.external_id and not post.external_id.startswith("container:")
    with stack.backend.factory() as s:
        attempts = s.scalars(
            select(PublishAttempt.status).where(PublishAttempt.post_id == post.id)
        ).all()
    assert [a.value for a in attempts] == ["succeeded"]


def test_a_caption_instagram_refuses_fails_with_metas_reason(stack: Stack) -> None:
    post, copies = publish_one(
        stack,
        lambda g: g.error_next(
            "create", code=100, subcode=2207010, message="The caption is too long"
        ),
    )
    assert (post.status, copies) == (S.FAILED, 0)
    assert "caption is too long" in (post.last_error or "")


def test_suspected_spam_stops_without_retry(stack: Stack) -> None:
    post, copies = publish_one(stack, lambda g: g.restrict_as_spam(1))
    assert (post.status, copies, post.attempts) == (S.FAILED, 0, 1)


def test_an_expired_token_holds_the_post_and_flags_the_target(stack: Stack) -> None:
    stack.graph.clear_faults()
    stack.graph.error_next("create", code=190, message="Error validating access token")
    with session_scope(stack.backend.factory) as s:
        post_id = add_post(s, at=utcnow(), caption_text="token case")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with stack.backend.factory() as s:
            post = s.get_one(Post, post_id)
            target = s.scalars(select(PublishTarget)).one()
        if target.needs_reauth and post.status is S.READY:
            break
        time.sleep(0.2)
    assert (post.status, target.needs_reauth) == (S.READY, True), post.last_error
    assert post.next_attempt_at is not None and "access token" in (post.last_error or "")
    with session_scope(stack.backend.factory) as s:  # leave the stack clean for the next case
        s.get_one(PublishTarget, target.id).needs_reauth = False
        cancel(s, post_id, actor="test")


def test_throttling_waits_as_long_as_meta_asks_then_publishes_once(stack: Stack) -> None:
    stack.graph.clear_faults()
    stack.graph.throttle_next(1, code=4, route="publish")  # "regain access in 5 minutes"
    marker = uuid.uuid4().hex[:8]
    with session_scope(stack.backend.factory) as s:
        post_id = add_post(s, at=utcnow(), caption_text=f"throttle {marker}")
    post = wait_until(stack, post_id, lambda p: p.status is S.READY and bool(p.last_error))
    assert post.next_attempt_at is not None and post.attempts == 0  # no try spent
    assert post.next_attempt_at - utcnow() > timedelta(minutes=4)
    assert "rate limited" in (post.last_error or "")
    with session_scope(stack.backend.factory) as s:  # the five minutes pass
        s.get_one(Post, post_id).next_attempt_at = None
    post = wait_until(stack, post_id, lambda p: p.status in SETTLED)
    assert post.status is S.PUBLISHED
    assert sum(marker in p.caption for p in stack.graph.published) == 1


def wait_until(stack: Stack, post_id: int, done: Callable[[Post], bool]) -> Post:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with stack.backend.factory() as s:
            post = s.get_one(Post, post_id)
        if done(post) and post.lease_owner is None:
            return post
        time.sleep(0.2)
    pytest.fail(f"post {post_id} stuck in {post.status}: {post.last_error}\n{stack.procs.logs()}")


def test_the_token_never_reaches_the_logs(stack: Stack) -> None:
    token = next(iter(stack.graph.tokens))
    assert token not in stack.procs.full_logs()
    assert Path(stack.backend.settings.data_dir).exists()
