"""The beat and the senders outlive their dependencies: no exit, one line when one goes and one
when it is back, refused claims given back, lost ones sent again, cut-off steps resumed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import psycopg
import pytest
from celery.worker.consumer.consumer import CONNECTION_ERROR, CONNECTION_RETRY
from kombu.exceptions import OperationalError as BrokerDown
from sqlalchemy.orm import Session, sessionmaker

import tasks.broker
import tasks.notify
from models import PostEvent, PostStatus, utcnow
from pipeline.db import session_scope
from pipeline.errors import Unreachable
from pipeline.settings import Settings
from pipeline.steps.claims import claim_due
from tasks.beat import run_beat
from tasks.broker import OutageLogFilter
from tasks.resume import resumed_when_back
from tasks.send import send_dispatches
from tests.conftest import add_post
from tests.unit.test_health import closed_port, wrapped
from tests.unit.test_runner import post_of

S = PostStatus


@pytest.fixture(autouse=True)
def _fresh_broker_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks.broker, "_watches", {})  # each test sees the broker anew


@dataclass
class Broker:
    """Stands in for the Celery app: takes ``accept`` messages, then refuses as Redis does."""

    accept: int = 1_000
    sent: list[tuple[str, Any]] = field(default_factory=list)

    def send_task(self, name: str, args: Any = None, **_: Any) -> None:
        if len(self.sent) >= self.accept:
            raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.sent.append((name, args))


def beat_in_thread(
    settings: Settings, broker: Broker, check_broker: Callable[[], bool], until: Callable[[], bool]
) -> None:
    """Run the beat until ``until()`` holds (checked each tick), or fail after 20 s."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_beat,
        args=(broker, settings),
        kwargs={"stop": stop, "check_broker": check_broker},
    )
    thread.start()
    try:
        for _ in range(400):
            if until():
                return
            assert thread.is_alive(), "the beat exited"
            stop.wait(0.05)
        pytest.fail("the beat never got there")
    finally:
        stop.set()
        thread.join(10)


def messages(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def test_the_beat_outlives_a_database_that_refuses_connections(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql+psycopg://ryla@127.0.0.1:{closed_port()}/ryla"
    settings = Settings(database_url=url, secret_key="k" * 40, data_dir=tmp_path)  # type: ignore[call-arg]
    attempts: list[int] = []
    with caplog.at_level(logging.INFO):
        beat_in_thread(
            settings,
            Broker(),
            check_broker=lambda: False,
            until=lambda: attempts.append(1) or len(attempts) > 50,  # ~2.5 s of retrying
        )
    assert messages(caplog, "database unreachable, retrying") == 1
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per try


def test_the_beat_waits_for_the_broker_and_ticks_when_it_is_back(
    settings: Settings,
    factory: sessionmaker[Session],
    influencer_id: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with session_scope(factory) as s:
        post_id = add_post(s, at=utcnow())
    settings.tick_seconds = 0.1
    asked: list[int] = []

    def check_broker() -> bool:
        asked.append(1)
        if len(asked) <= 2:
            raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return False

    broker = Broker()
    with caplog.at_level(logging.INFO):
        beat_in_thread(settings, broker, check_broker, until=lambda: bool(broker.sent))
    assert messages(caplog, "broker unreachable, retrying") == 1
    assert messages(caplog, "broker back after") == 1
    assert broker.sent[0] == ("ryla.generate", [[post_id], post_of(factory, post_id).lease_owner])


def test_claims_the_broker_refused_are_given_back_without_a_try(
    settings: Settings,
    factory: sessionmaker[Session],
    influencer_id: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with session_scope(factory) as s:
        ids = [add_post(s, at=utcnow(), formats=[fmt]) for fmt in ("feed_square", "story")]
        dispatches = claim_due(s, settings=settings, now=utcnow())
    broker = Broker(accept=1)  # one message goes out, then the broker is gone
    with caplog.at_level(logging.INFO):
        sent = send_dispatches(dispatches, broker, give_back_to=factory, actor="beat")  # type: ignore[arg-type]
    assert sent == 1 and messages(caplog, "broker unreachable, retrying") == 1
    [(_, [[went], _])] = broker.sent
    back = next(pid for pid in ids if pid != went)
    assert post_of(factory, went).status is S.GENERATING
    post = post_of(factory, back)
    assert (post.status, post.lease_owner, post.attempts) == (S.PLANNED, None, 0)
    with factory() as s:
        detail = s.query(PostEvent.detail).filter_by(post_id=back, to_status=S.PLANNED).scalar()
    assert detail == "broker unreachable: the message was not sent"


def test_a_broker_that_lost_its_messages_gets_the_unstarted_claims_again(
    settings: Settings,
    factory: sessionmaker[Session],
    influencer_id: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with session_scope(factory) as s:
        post_id = add_post(s, at=utcnow())
        [lost] = claim_due(s, settings=settings, now=utcnow())  # its message went with Redis
    settings.tick_seconds = 0.1
    broker = Broker()
    lost_once = iter([True])  # what the marker says: gone once, then there again
    with caplog.at_level(logging.WARNING):
        beat_in_thread(
            settings, broker, lambda: next(lost_once, False), until=lambda: bool(broker.sent)
        )
    [(name, [[sent_id], token])] = broker.sent[:1]
    assert (name, sent_id) == ("ryla.generate", post_id) and token != lost.token
    assert messages(caplog, "the broker lost its messages") == 1


@dataclass
class RecordingTask:
    """What ``resumed_when_back`` uses of a bound Celery task."""

    name: str = "ryla.generate"
    request: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(retries=2))
    retried: list[tuple[Any, float]] = field(default_factory=list)
    sent: list[tuple[Any, float, int]] = field(default_factory=list)

    def retry(self, *, args: Any, exc: Exception, countdown: float, max_retries: None) -> None:
        self.retried.append((args, countdown))
        raise RuntimeError("retry")  # Celery's Retry, as far as the caller can tell

    def apply_async(self, *, args: Any, countdown: float, retries: int) -> None:
        self.sent.append((args, countdown, retries))


def test_a_cut_off_batch_is_resumed_per_claim_after_a_capped_wait() -> None:
    task = RecordingTask()
    with pytest.raises(RuntimeError, match="retry"), resumed_when_back(task, batch=True):  # type: ignore[arg-type]
        raise Unreachable({1: "run-a", 2: "run-b", 3: "run-a"})
    [(args, countdown)] = task.retried
    assert args == [[1, 3], "run-a"] and 3.0 <= countdown <= 4.0  # the third try: ~4 s
    assert task.sent == [([[2], "run-b"], countdown, 3)]


def test_a_single_post_step_is_resumed_with_its_post_id() -> None:
    task = RecordingTask(name="ryla.render", request=SimpleNamespace(retries=40))
    with pytest.raises(RuntimeError), resumed_when_back(task):  # type: ignore[arg-type]
        raise Unreachable({7: "token-7"})
    [(args, countdown)] = task.retried
    assert args == [7, "token-7"] and countdown <= 10.0 and task.sent == []


def test_the_consumer_says_once_that_the_broker_is_gone_not_once_per_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer_log = logging.getLogger("celery.worker.consumer.consumer")
    quiet = OutageLogFilter()
    consumer_log.addFilter(quiet)
    refused = ConnectionRefusedError("Error 111 connecting to redis:6379. Connection refused.")
    try:
        with caplog.at_level(logging.INFO):
            consumer_log.warning("%s (%r)", CONNECTION_RETRY, refused)
            for n in range(1, 4):
                step = f"Trying again in {2 * n:.2f} seconds... ({n}/100)"
                consumer_log.error(CONNECTION_ERROR, "redis://redis:6379/0", refused, step)
            consumer_log.info("Connected to redis://redis:6379/0")
    finally:
        consumer_log.removeFilter(quiet)
    assert [r.getMessage() for r in caplog.records] == [
        "broker unreachable, retrying (ConnectionRefusedError: Error 111 connecting to "
        "redis:6379. Connection refused.)",
        "Connected to redis://redis:6379/0",
    ]


def test_the_notification_tasks_stop_quietly_while_the_database_is_away(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox rows hold where each message stands: the next scan carries on from there."""

    def away() -> Session:
        raise wrapped(psycopg.OperationalError("connection failed: Connection refused"))

    with httpx.Client() as client:
        rt = SimpleNamespace(session_factory=away, settings=settings, clock=utcnow, http=client)
        monkeypatch.setattr(tasks.notify, "current_runtime", lambda: rt)
        with caplog.at_level(logging.DEBUG, logger="tasks.notify"):
            tasks.notify.notify_scan.run()
            tasks.notify.notify_send.run("a-notification")
        assert messages(caplog, "database unreachable; the next scan carries on") == 2

        def broken() -> Session:
            raise RuntimeError("a bug, not an outage")

        rt.session_factory = broken
        with pytest.raises(RuntimeError):
            tasks.notify.notify_scan.run()
