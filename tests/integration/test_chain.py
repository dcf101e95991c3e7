"""The whole chain through real Celery worker processes and a real beat, on both backends.

Embedded default (SQLite + file broker) and production shape (PostgreSQL + Redis).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from models import Asset, Influencer, Post, PostEvent, PostStatus, PublishAttempt, utcnow
from pipeline.db import session_scope
from pipeline.steps.moves import Step
from pipeline.steps.triggers import trigger
from tasks.send import send_dispatches
from tests.conftest import add_influencer, add_post
from tests.integration.conftest import Backend, Processes

pytestmark = pytest.mark.integration
S = PostStatus


def wait_for(
    backend: Backend,
    procs: Processes,
    post_ids: Iterable[int],
    statuses: set[PostStatus],
    timeout: float = 90,
) -> None:
    ids = list(post_ids)
    deadline = time.monotonic() + timeout
    current: dict[int, PostStatus] = {}
    while time.monotonic() < deadline:
        with backend.factory() as s:
            rows = s.execute(select(Post.id, Post.status, Post.lease_owner).where(Post.id.in_(ids)))
            current = {pid: st for pid, st, lease in rows if lease is None}
        if len(current) == len(ids) and all(st in statuses for st in current.values()):
            return
        time.sleep(0.2)
    pytest.fail(f"posts {current} never reached {sorted(statuses)}\n{procs.logs()}")


def test_due_posts_travel_from_planned_to_the_outbox(
    backend: Backend, processes: Processes
) -> None:
    with session_scope(backend.factory) as s:
        add_influencer(s, default_hashtags=["ryla"])
        now = utcnow()
        ids = [
            add_post(s, at=now + timedelta(seconds=i), scene="travel", caption_text=f"#{i}")
            for i in range(3)
        ]
    processes.worker("gpu", concurrency=1)
    processes.worker("cpu,io")
    processes.start("beat")
    wait_for(backend, processes, ids, {S.PUBLISHED})
    outbox = backend.settings.outbox_dir / "mia"
    for post_id in ids:
        folder = outbox / f"post-{post_id:06d}"
        assert {p.name for p in folder.iterdir()} == {
            "01-feed_portrait.jpg",
            "caption.txt",
            "post.json",
        }
        assert "#ryla" in (folder / "caption.txt").read_text()
    with backend.factory() as s:
        published = s.scalars(select(Post.published_at).where(Post.id.in_(ids))).all()
        assert all(p is not None for p in published)
        assert s.scalar(select(func.count()).select_from(Asset)) == 3 * 3  # raw, rendition, thumb


def _send_twice(backend: Backend, post_id: int, step: Step) -> None:
    with session_scope(backend.factory) as s:
        dispatch = trigger(s, post_id, step, settings=backend.settings, now=utcnow(), actor="test")
    send_dispatches([dispatch, dispatch], backend.app)


def test_a_task_delivered_twice_changes_nothing(backend: Backend, processes: Processes) -> None:
    with session_scope(backend.factory) as s:
        add_influencer(s)
        post_id = add_post(s, at=utcnow())
        # Paused: the workers chain nothing by themselves, so each step is sent only by us.
        s.execute(update(Influencer).values(active=False))
    processes.worker("gpu", concurrency=1)
    processes.worker("cpu,io", concurrency=2)
    for step, done in (
        (Step.GENERATE, S.GENERATED),
        (Step.RENDER, S.READY),
        (Step.PUBLISH, S.PUBLISHED),
    ):
        _send_twice(backend, post_id, step)
        wait_for(backend, processes, [post_id], {done})
    with backend.factory() as s:
        moves = s.execute(
            select(PostEvent.to_status, func.count())
            .where(PostEvent.post_id == post_id)
            .group_by(PostEvent.to_status)
        ).all()
        assert dict(moves) == {
            S.GENERATING: 1,
            S.GENERATED: 1,
            S.RENDERING: 1,
            S.READY: 1,
            S.PUBLISHING: 1,
            S.PUBLISHED: 1,
        }
        assert s.scalar(select(func.count()).select_from(PublishAttempt)) == 1
        assert s.scalar(select(Post.generation).where(Post.id == post_id)) == 1
    folders = list(Path(backend.settings.outbox_dir, "mia").iterdir())
    assert [f.name for f in folders] == [f"post-{post_id:06d}"]
    # The second copy of each message really reached a worker, and was recognised (the last
    # one may still be on its way when the first has published: give it a moment).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if processes.full_logs().count("duplicate delivery ignored") >= 3:
            break
        time.sleep(0.2)
    assert processes.full_logs().count("duplicate delivery ignored") == 3
