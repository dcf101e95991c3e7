"""Two beats at once (a mistake people make) dispatch every post exactly once, on both databases.

Two ``run_beat`` threads with their own engines (the lock keeps one on standby), and two bare
tick loops without the lock (SKIP LOCKED and the conditional moves keep each claim single).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from migrations import migrate
from models import Post, PostEvent, PostStatus, utcnow
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.settings import Settings
from pipeline.steps.tick import TickReport, tick
from tasks.beat import run_beat
from tests.conftest import add_influencer, add_post
from tests.integration.conftest import fresh_database

pytestmark = pytest.mark.integration
POSTS = 40


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    url, drop = ("", lambda: None) if request.param == "sqlite" else fresh_database()
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_url=url,
        secret_key=secrets.token_urlsafe(32),
        generator="preview",
        tick_seconds=0.1,
        claim_batch=5,  # several ticks' worth of work, so the beats really overlap
    )
    migrate(settings)
    try:
        yield settings
    finally:
        drop()


def _due_posts(settings: Settings) -> list[int]:
    """Posts falling due one after another over the next two seconds."""
    engine = make_engine(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            add_influencer(session)
            now = utcnow()
            return [add_post(session, at=now + timedelta(seconds=i / 20)) for i in range(POSTS)]
    finally:
        engine.dispose()


class Broker:
    """A stand-in for the Celery app: records what the beat would have sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self._lock = threading.Lock()

    def send_task(self, name: str, args: list[Any] | None = None, **_: Any) -> None:
        with self._lock:
            self.sent.append((name, args))

    def check(self) -> bool:
        return False  # it answers, and has lost nothing


def _wait_until_claimed(settings: Settings, ids: list[int], timeout: float = 60) -> None:
    engine = make_engine(settings)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                stmt = select(func.count()).where(Post.status == PostStatus.GENERATING)
                if conn.scalar(stmt.select_from(Post)) == len(ids):
                    return
            time.sleep(0.1)
        pytest.fail("the beats did not claim every post in time")
    finally:
        engine.dispose()


def _claims_per_post(settings: Settings) -> Counter[int]:
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(PostEvent.post_id).where(PostEvent.to_status == PostStatus.GENERATING)
            )
            return Counter(post_id for (post_id,) in rows)
    finally:
        engine.dispose()


def _run_two(target: Callable[[threading.Event, int], None], settings: Settings) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=target, args=(stop, n)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        _wait_until_claimed(settings, list(range(POSTS)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def test_two_beats_dispatch_every_post_once(settings: Settings) -> None:
    ids = _due_posts(settings)
    broker = Broker()
    ticks: Counter[int] = Counter()
    dispatched: list[int] = []

    def beat(stop: threading.Event, n: int) -> None:
        def on_tick(report: TickReport) -> None:
            ticks[n] += 1
            dispatched.extend(d.post_id for d in report.dispatches)

        run_beat(broker, settings, stop=stop, on_tick=on_tick, check_broker=broker.check)  # type: ignore[arg-type]

    _run_two(beat, settings)
    assert sorted(dispatched) == ids  # each post once, from whichever beat held the lock
    assert len(ticks) == 1  # the other beat stood by
    assert _claims_per_post(settings) == Counter({post_id: 1 for post_id in ids})
    sent = [pid for name, args in broker.sent if name == "ryla.generate" for pid in args[0]]
    assert sorted(sent) == ids


def test_two_ticking_loops_without_the_lock_still_claim_each_post_once(
    settings: Settings,
) -> None:
    ids = _due_posts(settings)
    claimed: list[list[int]] = [[], []]

    def loop(stop: threading.Event, n: int) -> None:
        engine = make_engine(settings)  # one engine per "beat", as two processes would have
        factory = make_session_factory(engine)
        try:
            while not stop.is_set():
                with session_scope(factory) as session:
                    report = tick(session, settings=settings, now=utcnow())
                claimed[n].extend(d.post_id for d in report.dispatches)
                stop.wait(0.02)
        finally:
            engine.dispose()

    _run_two(loop, settings)
    assert sorted(claimed[0] + claimed[1]) == ids
    assert _claims_per_post(settings) == Counter({post_id: 1 for post_id in ids})
