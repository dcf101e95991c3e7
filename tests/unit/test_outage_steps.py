"""Steps and the database going away: a cut-off step keeps its claim and spends no try, and is
resumed under it; claims the broker never got, or lost, go back to be claimed again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import exc, select
from sqlalchemy.orm import Session, sessionmaker

from models import Post, PostEvent, PostStatus, PublishAttempt
from pipeline.db import session_scope
from pipeline.errors import TransientPublishError, Unreachable
from pipeline.generators import GeneratedImage, GenerationRequest, PreviewGenerator
from pipeline.health import Outage
from pipeline.publishers.base import PublishRequest, PublishResult
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch, claim_due
from pipeline.steps.generate import run_generate
from pipeline.steps.lease import follow_ups, take_leases
from pipeline.steps.moves import Step
from pipeline.steps.outage import extend_leases, give_back, return_unstarted
from pipeline.steps.publish import run_publish
from pipeline.steps.render import run_render
from pipeline.steps.run import run_step
from pipeline.steps.runtime import Runtime
from pipeline.steps.tick import reconcile_expired
from tests.conftest import NOW
from tests.unit.test_runner import first_tick, make_runtime, new_post, post_of

S = PostStatus
A_MINUTE_BEFORE = NOW - timedelta(minutes=1)  # one post per influencer and instant


def outage_error() -> exc.OperationalError:
    return exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))


class SwitchableDatabase:
    """A session factory whose database can be taken away and given back."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.down = False

    def __call__(self) -> Session:
        if self.down:
            raise outage_error()
        return self.factory()


@dataclass
class CutOffPublisher:
    """Publishes, then the database goes away before the result is recorded (``fail``: the
    target refuses too)."""

    database: SwitchableDatabase
    fail: Exception | None = None
    kind: str = "recording"
    requests: list[PublishRequest] = field(default_factory=list)

    def publish(
        self, request: PublishRequest, checkpoint: Callable[[str, str], None]
    ) -> PublishResult:
        self.requests.append(request)
        checkpoint("container_id", f"c-{request.post_id}")
        self.database.down = len(self.requests) == 1
        if self.fail is not None:
            raise self.fail
        return PublishResult(external_id=f"media-{request.post_id}")


def runtime(
    settings: Settings, factory: sessionmaker[Session], **kwargs: object
) -> tuple[Runtime, SwitchableDatabase]:
    database = SwitchableDatabase(factory)
    rt = make_runtime(settings, factory, **kwargs)
    rt.session_factory = database  # type: ignore[assignment]
    return rt, database


def claimed(
    rt: Runtime, settings: Settings, factory: sessionmaker[Session], step: Step
) -> Dispatch:
    """Run the first post's steps until ``step`` is claimed for it."""
    queue = first_tick(settings, factory)
    while queue:
        dispatch = queue.pop(0)
        if dispatch.step is step:
            return dispatch
        queue += run_step(rt, dispatch.step, dispatch.post_id, dispatch.token)
    raise AssertionError(f"{step} was never claimed")


def no_failure_recorded(factory: sessionmaker[Session], post_id: int) -> bool:
    post = post_of(factory, post_id)
    with factory() as s:
        details = s.scalars(select(PostEvent.detail).where(PostEvent.post_id == post_id)).all()
    return (
        post.attempts == 0 and post.last_error is None and not any("failed" in d for d in details)
    )


def test_a_publish_cut_off_by_the_database_keeps_its_claim_and_spends_no_try(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    rt, database = runtime(settings, factory)
    publisher = CutOffPublisher(database)
    rt.publisher_factory = lambda target: publisher
    dispatch = claimed(rt, settings, factory, Step.PUBLISH)
    with pytest.raises(Unreachable) as cut_off:
        run_publish(rt, post_id, dispatch.token)
    owner = cut_off.value.resume[post_id]
    post = post_of(factory, post_id)
    assert (post.status, post.lease_owner) == (S.PUBLISHING, owner) and owner.startswith("run-")
    assert no_failure_recorded(factory, post_id)
    database.down = False
    assert run_publish(rt, post_id, owner) == []  # resumed under the same claim
    assert post_of(factory, post_id).status is S.PUBLISHED
    first, again = publisher.requests
    assert again.attempt_id == first.attempt_id and again.resume == {"container_id": f"c-{post_id}"}
    with factory() as s:
        assert len(s.scalars(select(PublishAttempt)).all()) == 1


def test_a_failure_that_cannot_be_recorded_is_tried_again_without_spending_a_try(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    rt, database = runtime(settings, factory)
    rt.publisher_factory = lambda target: CutOffPublisher(
        database, fail=TransientPublishError("503")
    )
    dispatch = claimed(rt, settings, factory, Step.PUBLISH)
    with pytest.raises(Unreachable) as cut_off:
        run_publish(rt, post_id, dispatch.token)
    assert post_of(factory, post_id).lease_owner == cut_off.value.resume[post_id]
    assert no_failure_recorded(factory, post_id)


def test_a_step_that_cannot_take_its_lease_resumes_under_its_token(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    rt, database = runtime(settings, factory)
    dispatch = claimed(rt, settings, factory, Step.RENDER)
    database.down = True
    with pytest.raises(Unreachable) as cut_off:
        run_render(rt, post_id, dispatch.token)
    assert cut_off.value.resume == {post_id: dispatch.token}
    assert (post_of(factory, post_id).status, post_of(factory, post_id).lease_owner) == (
        S.RENDERING,
        dispatch.token,
    )
    database.down = False
    [publish] = run_render(rt, post_id, dispatch.token)
    assert publish.step is Step.PUBLISH and no_failure_recorded(factory, post_id)


@dataclass
class CutOffGenerator:
    database: SwitchableDatabase

    name: str = "cut-off"

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        self.database.down = True  # gone before the images are recorded
        return PreviewGenerator().generate(requests)


def test_every_post_of_a_cut_off_batch_is_named_with_its_own_run(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    ids = [new_post(factory), new_post(factory, at=A_MINUTE_BEFORE)]
    rt, database = runtime(settings, factory)
    rt.generator_factory = lambda: CutOffGenerator(database)
    [token] = {d.token for d in first_tick(settings, factory)}  # claimed for one generator call
    with pytest.raises(Unreachable) as cut_off:
        run_generate(rt, ids, token)
    with factory() as s:
        owners = dict(s.execute(select(Post.id, Post.lease_owner).where(Post.id.in_(ids))).all())
    assert cut_off.value.resume == owners and len(set(owners.values())) == 2


def test_the_next_step_waits_for_the_beat_while_the_database_is_away(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    rt, database = runtime(settings, factory)
    database.down = True
    assert follow_ups(rt, [post_id]) == []


def test_claims_whose_message_was_not_sent_go_back_without_a_try(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    rt, _ = runtime(settings, factory)
    dispatch = claimed(rt, settings, factory, Step.PUBLISH)
    stale = Dispatch(Step.PUBLISH, post_id, "an-older-token")
    with session_scope(factory) as s:
        assert give_back(s, [stale], actor="beat", reason="broker unreachable") == 0
        assert give_back(s, [dispatch], actor="beat", reason="broker unreachable") == 1
    post = post_of(factory, post_id)
    assert (post.status, post.lease_owner, post.next_attempt_at) == (S.READY, None, None)
    assert no_failure_recorded(factory, post_id)
    with session_scope(factory) as s:
        [again] = claim_due(s, settings=settings, now=NOW)
    assert again.post_id == post_id and again.token != dispatch.token


def test_a_lost_broker_sends_again_only_what_no_worker_has_started(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    started, waiting = new_post(factory), new_post(factory, at=A_MINUTE_BEFORE)
    rt, _ = runtime(settings, factory)
    [token] = {d.token for d in first_tick(settings, factory)}  # claimed for one generator call
    take_leases(rt, Step.GENERATE, [started], token)
    with session_scope(factory) as s:
        assert return_unstarted(s, actor="beat", reason="the broker lost its messages") == 1
    assert post_of(factory, started).status is S.GENERATING
    assert (post_of(factory, waiting).status, post_of(factory, waiting).lease_owner) == (
        S.PLANNED,
        None,
    )
    assert no_failure_recorded(factory, waiting)


def test_leases_running_when_the_database_went_away_get_the_time_back(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    ids = [new_post(factory, at=NOW - timedelta(minutes=m)) for m in range(3)]
    rt, _ = runtime(settings, factory)
    [token] = {d.token for d in first_tick(settings, factory)}  # claimed for one generator call
    take_leases(rt, Step.GENERATE, ids[:2], token)  # the third claim no worker has started
    with session_scope(factory) as s:
        ends = {
            ids[0]: NOW - timedelta(seconds=5),  # had run out before the outage: a dead worker
            ids[1]: NOW + timedelta(seconds=20),
            ids[2]: NOW + timedelta(seconds=10),  # a claim's grace: re-sent, never extended
        }
        for pid, end in ends.items():
            s.get_one(Post, pid).lease_expires_at = end
    outage = Outage("database", started=NOW, ended=NOW + timedelta(seconds=90))
    with session_scope(factory) as s:
        assert extend_leases(s, outage=outage) == 1
    assert post_of(factory, ids[0]).lease_expires_at == ends[ids[0]]
    assert post_of(factory, ids[1]).lease_expires_at == ends[ids[1]] + timedelta(seconds=90)
    assert post_of(factory, ids[2]).lease_expires_at == ends[ids[2]]


def test_a_post_can_wait_out_an_outage_longer_than_its_lease(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    """Without the time back, the first tick after a long outage would take a try from it."""
    post_id = new_post(factory)
    rt, _ = runtime(settings, factory)
    dispatch = claimed(rt, settings, factory, Step.RENDER)
    [lease] = take_leases(rt, Step.RENDER, [post_id], dispatch.token)
    back = NOW + timedelta(seconds=settings.lease_seconds + 300)
    with session_scope(factory) as s:
        extend_leases(s, outage=Outage("database", NOW, back))
        assert reconcile_expired(s, settings=settings, now=back) == (0, 0)
    assert post_of(factory, post_id).lease_owner == lease.run_id
