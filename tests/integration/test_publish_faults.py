"""The fault suite: publishing to the Graph API stand-in through real workers (PostgreSQL, Redis,
``ryla serve``, a beat), with lost answers, refusals after lost answers, throttling bursts, slow
answers beyond the client timeout, and kill -9 of the io worker mid-publish.

Every case ends with the same check, read from the stand-in's own record: each post is on
"Instagram" at most once; a published post holds the media id Instagram gave it; a post that
is not published (failed, held) has nothing live; an unknown one says why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import psutil
import pytest
from sqlalchemy import select

from models import Post, PostStatus, PublishAttempt, utcnow
from pipeline.db import session_scope
from pipeline.publishers.targets import create_target
from pipeline.settings import Settings
from tests.conftest import add_influencer, add_post
from tests.fakes.graph_api import FakeGraphApi, Published
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
SETTLED = {S.PUBLISHED, S.FAILED, S.UNKNOWN, S.PREVIEW_ONLY}
LEASE_SECONDS = 15  # a killed run's post returns this long after its last checkpoint
CLIENT_TIMEOUT = 3.0  # RYLA_HTTP_TIMEOUT_SECONDS: an answer slower than this is lost
_POST_IN_URL = re.compile(r"/media/posts/(\d+)/")


@dataclass
class Stack:
    backend: Backend
    graph: FakeGraphApi
    procs: Processes
    io: subprocess.Popen[bytes]

    def media(self) -> dict[int, list[Published]]:
        """What the stand-in published, by the post its image URLs belong to."""
        found: dict[int, list[Published]] = {}
        for media in list(self.graph.published):
            match = _POST_IN_URL.search(media.image_urls[0])
            assert match, media.image_urls
            found.setdefault(int(match.group(1)), []).append(media)
        return found

    def kill_io(self) -> None:
        """kill -9 the io worker and every process it forked, as a crashed machine would."""
        parent = psutil.Process(self.io.pid)
        for proc in [*parent.children(recursive=True), parent]:
            proc.kill()
        self.io.wait(10)

    def start_io(self) -> None:
        self.procs.worker("io", concurrency=2)
        self.io = self.procs.procs[-1][0]

    def ryla(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.backend.env}
        return subprocess.run(
            [sys.executable, "-m", "admin", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("faults")
    db_url, drop = fresh_database()
    port = free_port()
    env = served_env(tmp, db_url, flushed_redis(), port) | {
        "RYLA_TICK_SECONDS": "1",
        "RYLA_LEASE_SECONDS": str(LEASE_SECONDS),
        "RYLA_CLAIM_GRACE_SECONDS": "3",
        "RYLA_MAX_ATTEMPTS": "3",
        "RYLA_HTTP_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT),
        "RYLA_THROTTLE_WAIT_SECONDS": "1",
        "RYLA_THROTTLE_BUDGET_SECONDS": "20",
        "RYLA_GRAPH_POLL_FIRST_DELAY": "0.05",
        "RYLA_GRAPH_POLL_MAX_DELAY": "0.2",
    }
    backend, engine = open_backend("postgres_redis", env, tmp / "logs")
    factory = backend.factory
    with FakeGraphApi(processing_seconds=0.2) as graph:
        with session_scope(factory) as s:
            add_influencer(s)
            _add_instagram(s, backend.settings, graph, "mia", accept_previews=True)
        procs = Processes(backend)
        procs.start("serve", "--port", str(port), ready="serving media")
        procs.worker("gpu", concurrency=1)
        procs.worker("cpu", concurrency=1)
        procs.worker("io", concurrency=2)
        io = procs.procs[-1][0]
        procs.start("beat")
        try:
            yield Stack(backend, graph, procs, io)
        finally:
            procs.stop()
            engine.dispose()
            drop()


def _add_instagram(
    session: object, settings: Settings, graph: FakeGraphApi, handle: str, accept_previews: bool
) -> None:
    data = graph.target(f"{handle}-ig", accept_previews=accept_previews)
    create_target(session=session, settings=settings, handle=handle, data=data, now=utcnow())  # type: ignore[arg-type]


def plan(
    stack: Stack, count: int = 1, *, start: float = 0.0, spacing: float = 0.0, **kwargs: object
) -> list[int]:
    """Posts due ``start`` seconds from now, ``spacing`` seconds apart, each with a caption of
    its own unless one is given."""
    marker = uuid.uuid4().hex[:8]
    now = utcnow()
    with session_scope(stack.backend.factory) as s:
        return [
            add_post(
                s,
                at=now + timedelta(seconds=start + i * (spacing or 0.01)),  # one per instant
                **{"caption_text": f"case {marker} #{i}", **kwargs},  # type: ignore[arg-type]
            )
            for i in range(count)
        ]


def posts(stack: Stack, ids: list[int]) -> list[Post]:
    with stack.backend.factory() as s:
        return list(s.scalars(select(Post).where(Post.id.in_(ids)).order_by(Post.id)))


def wait_until(
    stack: Stack, ids: list[int], done: Callable[[Post], bool], timeout: float = 90
) -> list[Post]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = posts(stack, ids)
        if all(done(p) for p in found):
            return found
        time.sleep(0.2)
    states = [(p.id, p.status.value, p.last_error) for p in found]
    pytest.fail(f"posts never settled: {states}\n{stack.procs.logs()}")


def settle(stack: Stack, ids: list[int], timeout: float = 90) -> list[Post]:
    found = wait_until(stack, ids, lambda p: p.status in SETTLED and p.lease_owner is None, timeout)
    assert_exactly_once(stack)
    return found


def assert_exactly_once(stack: Stack) -> None:
    """Zero doubles; every published post holds its own media id; nothing live has failed."""
    media = stack.media()
    with stack.backend.factory() as s:
        every = list(s.scalars(select(Post)))
    for post in every:
        live = media.get(post.id, [])
        assert len(live) <= 1, f"post {post.id} is on Instagram {len(live)} times"
        if post.status is S.PUBLISHED:
            assert [m.media_id for m in live] == [post.external_id], post.id
        elif post.status is S.UNKNOWN:
            assert "ryla post resolve" in (post.last_error or ""), post.last_error
        else:
            assert live == [], f"post {post.id} is {post.status.value} but live on Instagram"


def await_request(stack: Stack, route: str, since: int, timeout: float = 60) -> int:
    """The index of the first ``route`` request from ``since`` on, as soon as it arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, request in enumerate(stack.graph.requests[since:], start=since):
            if request.route == route:
                return index
        time.sleep(0.02)
    pytest.fail(f"no {route} request reached the stand-in\n{stack.procs.logs()}")


# --- the cases --------------------------------------------------------------------------------


def test_without_faults_each_post_and_carousel_goes_out_once(stack: Stack) -> None:
    stack.graph.clear_faults()
    ids = plan(stack) + plan(stack, images=3, formats=["feed_square"])
    assert [p.status for p in settle(stack, ids)] == [S.PUBLISHED, S.PUBLISHED]


def test_lost_answers_are_settled_by_the_container_with_each_posts_own_media_id(
    stack: Stack,
) -> None:
    """Item 6: three posts with one caption (a calendar's), every publish answer lost.

    Each post goes out after the one before has settled, as a calendar's do: each then finds
    the earlier ones' media with the same caption in its minutes and must pass over them as
    held. (Two such posts published in the same seconds cannot be told apart and end unknown,
    by design; timing on a loaded machine must not decide which case this test is.)"""
    stack.graph.clear_faults()
    stack.graph.drop_after_publish(3)
    found: list[Post] = []
    for _ in range(3):
        [post_id] = plan(stack, caption_text="Same words every morning")
        found += settle(stack, [post_id])
    assert [p.status for p in found] == [S.PUBLISHED] * 3
    assert len({p.external_id for p in found}) == 3
    assert stack.graph.calls("publish") >= 3


def test_a_throttled_publish_after_a_lost_answer_ends_published_never_failed(
    stack: Stack,
) -> None:
    """Item 1, exactly: the answer is lost, the container still reads FINISHED, the second
    media_publish is refused (code 4); the first lands a moment later."""
    stack.graph.clear_faults()
    stack.graph.drop_after_publish(lands_after=2.0)
    stack.graph.throttle_next(1, route="publish", skip=1, regain_minutes=0)
    creates = stack.graph.calls("create")
    [post] = settle(stack, plan(stack))
    assert (post.status, post.attempts) == (S.PUBLISHED, 0)
    assert stack.graph.calls("create") - creates == 1  # never a second container


def test_a_refusal_after_a_lost_answer_is_unknown_and_never_published_twice(
    stack: Stack,
) -> None:
    stack.graph.clear_faults()
    stack.graph.drop_after_publish(lands_after=2.0)
    stack.graph.error_next("publish", code=4, subcode=2207051, message="Spam", skip=1)
    [post] = settle(stack, plan(stack))
    assert post.status is S.UNKNOWN and "may have reached Instagram" in (post.last_error or "")
    time.sleep(2.5)  # the first publish lands
    again = stack.ryla("post", "publish", str(post.id))
    assert again.returncode == 2, again
    assert f"error: post {post.id} may already be on Instagram" in again.stderr
    resolved = stack.ryla("post", "resolve", str(post.id))
    assert resolved.returncode == 0 and "published as" in resolved.stdout, resolved
    [post] = posts(stack, [post.id])
    assert post.status is S.PUBLISHED
    assert_exactly_once(stack)


def test_kill_9_of_the_io_worker_during_media_publish(stack: Stack) -> None:
    stack.graph.clear_faults()
    stack.graph.slow_next(1, seconds=1.5, route="publish")  # it lands, nobody hears it
    since = len(stack.graph.requests)
    ids = plan(stack)
    await_request(stack, "publish", since)
    stack.kill_io()
    stack.start_io()
    [post] = settle(stack, ids, timeout=LEASE_SECONDS + 60)
    assert post.status is S.PUBLISHED


def test_kill_9_right_after_the_publish_succeeds(stack: Stack) -> None:
    """Item 2: Instagram answered with the media id, the worker dies before recording it."""
    stack.graph.clear_faults()
    stack.graph.slow_next(1, seconds=10, route="status", after="publish")  # the permalink read
    since = len(stack.graph.requests)
    ids = plan(stack)
    published = await_request(stack, "publish", since)
    await_request(stack, "status", published + 1)  # the media id is recorded by now
    stack.kill_io()
    stack.start_io()
    [post] = settle(stack, ids, timeout=LEASE_SECONDS + 60)
    assert (post.status, post.attempts) == (S.PUBLISHED, 0)  # recording only: no try spent
    with stack.backend.factory() as s:
        statuses = s.scalars(select(PublishAttempt.status).where(PublishAttempt.post_id == post.id))
        assert [a.value for a in statuses] == ["succeeded"]


def test_throttling_bursts_cost_no_try(stack: Stack) -> None:
    stack.graph.clear_faults()
    for code in (4, 17, 32, 613):
        stack.graph.throttle_next(2, code=code, regain_minutes=0)
    ids = plan(stack, 3, spacing=1.0, images=3, formats=["feed_square"])  # one post per instant
    found = settle(stack, ids)
    assert [(p.status, p.attempts) for p in found] == [(S.PUBLISHED, 0)] * 3
    carousels = [c for c in stack.graph.containers.values() if c.kind == "CAROUSEL"]
    items = [c for c in stack.graph.containers.values() if c.kind == "CAROUSEL_ITEM"]
    assert all(c.fields.get("is_ai_generated") == "true" for c in carousels)
    assert not any("is_ai_generated" in c.fields for c in items)


def test_throttling_past_the_budget_fails_honestly_with_nothing_live(stack: Stack) -> None:
    stack.graph.clear_faults()
    stack.graph.throttle_next(10_000, route="quota", regain_minutes=0)
    [post] = settle(stack, plan(stack), timeout=60)
    message = post.last_error or ""
    assert post.status is S.FAILED
    assert re.search(r"rate limited for 2\d s past the post's time", message), message
    assert "nothing was published" in message and "will retry" not in message
    stack.graph.clear_faults()
    assert stack.ryla("post", "publish", str(post.id)).returncode == 0
    [post] = wait_until(stack, [post.id], lambda p: p.status is S.PUBLISHED)
    assert_exactly_once(stack)


@pytest.mark.parametrize("route", ["publish", "create", "status"])
def test_answers_slower_than_the_client_waits_never_double_a_post(stack: Stack, route: str) -> None:
    stack.graph.clear_faults()
    stack.graph.slow_next(1, seconds=CLIENT_TIMEOUT + 1.5, route=route)
    [post] = settle(stack, plan(stack))
    assert post.status is S.PUBLISHED
    time.sleep(CLIENT_TIMEOUT)  # the slow call arrives after all: still one post
    assert_exactly_once(stack)


def test_placeholders_wait_for_a_target_that_takes_them(stack: Stack) -> None:
    stack.graph.clear_faults()
    with session_scope(stack.backend.factory) as s:
        add_influencer(s, "zoe")
        _add_instagram(s, stack.backend.settings, stack.graph, "zoe", accept_previews=False)
    creates = stack.graph.calls("create")
    [post] = settle(stack, plan(stack, handle="zoe"))
    assert post.status is S.PREVIEW_ONLY and "placeholder images" in (post.last_error or "")
    assert stack.graph.calls("create") == creates


def test_claimed_ahead_posts_of_a_killed_io_worker_go_out_soon_after_their_time(
    stack: Stack,
) -> None:
    """Item 3: posts claimed up to 120 s early wait in the io worker as ETA messages; it dies.
    Each goes out within 30 s of its time (the old lease was the batch's last time + 15 s)."""
    stack.graph.clear_faults()
    ids = plan(stack, 4, start=25, spacing=10, lead=1)
    claimed_ahead = wait_until(
        stack,
        ids,
        lambda p: p.status is S.PUBLISHING and not (p.lease_owner or "run-").startswith("run-"),
        timeout=60,
    )
    assert all(p.publish_at > utcnow() for p in claimed_ahead)
    stack.kill_io()
    stack.start_io()
    found = settle(stack, ids, timeout=120)
    late = [(p.published_at - p.publish_at).total_seconds() for p in found if p.published_at]
    print(f"claimed ahead, io worker killed: seconds late {sorted(late)}")
    assert len(late) == 4 and max(late) < 30, late
