"""Where a publish goes when it ends badly: once it may be out, only published or unknown;
throttling waits without spending a try, up to a budget past the post's time; success and the
move to published commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import AttemptStatus, Post, PostStatus, PublishAttempt
from pipeline.db import session_scope
from pipeline.errors import (
    AuthExpired,
    PermanentPublishError,
    Throttled,
    TransientPublishError,
)
from pipeline.publishers.base import Checkpoint, PublishRequest, PublishResult
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch
from pipeline.steps.moves import Step
from pipeline.steps.runtime import Runtime
from pipeline.steps.tick import reconcile_expired, tick
from pipeline.steps.triggers import trigger
from tests.conftest import NOW
from tests.fakes.steps_kit import drain, first_tick, make_runtime, new_post, post_of

S = PostStatus


@dataclass
class ScriptedPublisher:
    """Goes as far as ``reach`` (container, publish sent, answered), then raises ``errors``
    in turn; a resumed attempt that holds a media id is recorded without a call."""

    errors: list[Exception] = field(default_factory=list)
    reach: str = "container"
    kind: str = "scripted"
    sent: int = 0
    after_answer: Callable[[], None] | None = None

    def publish(self, request: PublishRequest, checkpoint: Checkpoint) -> PublishResult:
        if request.resume.get("external_id"):
            return PublishResult(str(request.resume["external_id"]))
        checkpoint("container_id", "c-1")
        if self.reach in ("sent", "answered"):
            checkpoint("publish_requested", "c-1")
            self.sent += 1
        if self.errors:
            raise self.errors.pop(0)
        checkpoint("external_id", "m-1")
        if self.after_answer:
            self.after_answer()
        return PublishResult("m-1")


def publish_once(rt: Runtime, settings: Settings, factory: sessionmaker[Session]) -> Post:
    drain(rt, first_tick_at(settings, factory, rt.clock()))
    with factory() as s:
        return s.get_one(Post, s.scalars(select(Post.id)).one())


def first_tick_at(
    settings: Settings, factory: sessionmaker[Session], now: datetime
) -> list[Dispatch]:
    """The tick at ``now``, with any back-off already over."""
    with session_scope(factory) as s:
        s.execute(update(Post).values(next_attempt_at=None))
        return tick(s, settings=settings, now=now).dispatches


def attempt_status(factory: sessionmaker[Session]) -> AttemptStatus:
    with factory() as s:
        return s.scalars(select(PublishAttempt.status)).one()


def test_a_permanent_refusal_after_a_publish_may_be_out_is_unknown_never_failed(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    refused = PermanentPublishError("Instagram media_publish failed: spam (code 4)")
    rt = make_runtime(settings, factory, publisher=ScriptedPublisher([refused], reach="sent"))
    post = publish_once(rt, settings, factory)
    assert post.status is S.UNKNOWN
    assert "container c-1 may have reached Instagram" in (post.last_error or "")
    assert f"ryla post resolve {post.id}" in (post.last_error or "")
    assert attempt_status(factory) is AttemptStatus.UNKNOWN


def test_a_permanent_refusal_before_anything_was_sent_fails_the_post(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    refused = PermanentPublishError("Instagram container failed: caption too long")
    rt = make_runtime(settings, factory, publisher=ScriptedPublisher([refused]))
    assert publish_once(rt, settings, factory).status is S.FAILED
    assert attempt_status(factory) is AttemptStatus.FAILED


def test_tries_running_out_while_a_publish_may_be_out_end_unknown(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    errors: list[Exception] = [TransientPublishError("HTTP 500") for _ in range(9)]
    rt = make_runtime(settings, factory, publisher=ScriptedPublisher(errors, reach="sent"))
    for _ in range(settings.max_attempts):
        post = publish_once(rt, settings, factory)
    assert (post.status, post.attempts) == (S.UNKNOWN, settings.max_attempts)


def throttled(settings: Settings, factory: sessionmaker[Session], **kwargs: object) -> Runtime:
    errors: list[Exception] = [Throttled("Instagram: rate limited", **kwargs) for _ in range(50)]  # type: ignore[arg-type]
    return make_runtime(settings, factory, publisher=ScriptedPublisher(errors))


def test_throttling_reschedules_without_spending_a_try(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    post = publish_once(throttled(settings, factory), settings, factory)
    assert (post.status, post.attempts) == (S.READY, 0)
    wait = (post.next_attempt_at or NOW) - NOW
    assert timedelta(seconds=0.9 * settings.throttle_wait_seconds) <= wait
    assert wait <= timedelta(seconds=1.1 * settings.throttle_wait_seconds)
    assert "(no try spent)" in (post.last_error or "") and "failed" not in (post.last_error or "")
    assert attempt_status(factory) is AttemptStatus.STARTED  # resumed, same container


def test_throttling_honours_the_wait_the_target_asks_for(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    post = publish_once(throttled(settings, factory, retry_after=600), settings, factory)
    assert post.next_attempt_at is not None
    assert post.next_attempt_at - NOW >= timedelta(seconds=600)


def test_throttling_for_as_long_as_the_budget_lasts_never_fails_the_post(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    rt = throttled(settings, factory)
    now = NOW
    while now < NOW + timedelta(seconds=settings.throttle_budget_seconds):
        rt.clock = lambda moment=now: moment  # type: ignore[misc]
        post = publish_once(rt, settings, factory)
        assert (post.status, post.attempts) == (S.READY, 0)
        assert post.next_attempt_at is not None
        assert post.next_attempt_at <= NOW + timedelta(seconds=settings.throttle_budget_seconds)
        now = post.next_attempt_at
    rt.clock = lambda: now
    post = publish_once(rt, settings, factory)  # the last try, at the budget's edge
    assert post.status is S.FAILED


def test_throttling_past_the_budget_fails_with_an_honest_message(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    rt = throttled(settings, factory)
    assert publish_once(rt, settings, factory).status is S.READY  # throttled at its time
    rt.clock = lambda: NOW + timedelta(seconds=settings.throttle_budget_seconds + 1)
    post = publish_once(rt, settings, factory)  # ... and still an hour later
    message = post.last_error or ""
    assert post.status is S.FAILED
    assert "rate limited for 60 min past the post's time" in message
    assert "nothing was published" in message and "will retry" not in message
    assert f"ryla post publish {post.id}" in message


def test_throttling_past_the_budget_is_unknown_when_a_publish_may_be_out(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    errors: list[Exception] = [Throttled("rate limited"), Throttled("rate limited")]
    rt = make_runtime(settings, factory, publisher=ScriptedPublisher(errors, reach="sent"))
    assert publish_once(rt, settings, factory).status is S.READY
    rt.clock = lambda: NOW + timedelta(seconds=settings.throttle_budget_seconds + 1)
    post = publish_once(rt, settings, factory)
    assert post.status is S.UNKNOWN and "may have reached Instagram" in (post.last_error or "")


def test_a_wait_asked_beyond_the_budget_gives_up_at_once(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    wait = settings.throttle_budget_seconds + 60
    post = publish_once(throttled(settings, factory, retry_after=wait), settings, factory)
    assert post.status is S.FAILED and "nothing was published" in (post.last_error or "")


def test_the_budget_of_a_persons_publish_of_an_old_post_runs_from_its_first_try(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory, at=NOW - timedelta(minutes=10))  # within grace, long before the try
    rt = throttled(settings, factory)
    later = NOW + timedelta(seconds=settings.throttle_budget_seconds - 60)
    rt.clock = lambda: later  # first try: 50 minutes after the post's time
    with session_scope(factory) as s:
        s.execute(update(Post).values(publish_at=later - timedelta(minutes=5)))
    assert publish_once(rt, settings, factory).status is S.READY


def test_success_and_the_move_to_published_commit_together(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    """Issue 10, item 2: a run that dies after Instagram answered leaves no succeeded attempt
    behind a post still publishing; recovery records it, and it costs no try."""
    post_id = new_post(factory)

    def overtaken() -> None:  # the run "dies": another run holds the lease before the commit
        with session_scope(factory) as s:
            s.execute(update(Post).values(lease_owner="run-dead"))

    publisher = ScriptedPublisher(after_answer=overtaken)
    rt = make_runtime(settings, factory, publisher=publisher)
    drain(rt, first_tick(settings, factory))
    with factory() as s:
        attempt = s.scalars(select(PublishAttempt)).one()
    assert (attempt.status, attempt.external_id) == (AttemptStatus.STARTED, "m-1")
    assert post_of(factory, post_id).status is S.PUBLISHING

    with session_scope(factory) as s:  # the dead run's lease expires on its last try
        s.execute(
            update(Post).values(
                lease_expires_at=NOW - timedelta(seconds=1), attempts=settings.max_attempts - 1
            )
        )
        reconcile_expired(s, settings=settings, now=NOW)
    post = post_of(factory, post_id)
    assert (post.status, post.attempts) == (S.READY, settings.max_attempts - 1)
    publisher.after_answer = None
    drain(rt, first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert (post.status, post.external_id) == (S.PUBLISHED, "m-1")
    assert attempt_status(factory) is AttemptStatus.SUCCEEDED


def _unusable(target: object) -> ScriptedPublisher:
    raise ValueError("secrets the key cannot open")


def test_posts_held_for_a_target_a_person_must_fix_go_missed_past_the_grace_window(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    """Days of posts never pile up behind a broken target to go out at once when it is fixed."""
    new_post(factory)
    rt = make_runtime(settings, factory)
    rt.publisher_factory = _unusable  # type: ignore[assignment]
    post = publish_once(rt, settings, factory)
    assert post.status is S.READY and "cannot open" in (post.last_error or "")
    assert attempt_status(factory) is AttemptStatus.FAILED  # nothing was sent: nothing to resume
    within = NOW + timedelta(seconds=settings.grace_seconds - 60)
    again = first_tick_at(settings, factory, within)  # within the window: tried again
    assert [d.post_id for d in again] == [post.id]
    drain(rt, again)  # and held again, its attempt closed again
    assert post_of(factory, post.id).status is S.READY
    assert first_tick_at(settings, factory, NOW + timedelta(days=3)) == []
    assert post_of(factory, post.id).status is S.MISSED


def test_an_expired_token_after_the_publish_was_sent_keeps_the_attempt_to_resume(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    expired = AuthExpired("Instagram: token expired (code 190)")
    rt = make_runtime(settings, factory, publisher=ScriptedPublisher([expired], reach="sent"))
    post = publish_once(rt, settings, factory)
    assert post.status is S.READY
    assert attempt_status(factory) is AttemptStatus.STARTED  # may be out: asked again, never lost


def test_a_persons_publish_of_a_failed_post_keeps_its_idempotency_key(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    """A webhook whose answers were lost may have posted it: the receiver must see one key."""
    post_id = new_post(factory)
    keys: list[str] = []
    errors: list[Exception] = [TransientPublishError("HTTP 504") for _ in range(9)]
    scripted = ScriptedPublisher(errors)
    original = scripted.publish

    def recording(request: PublishRequest, checkpoint: Checkpoint) -> PublishResult:
        keys.append(request.idempotency_key)
        return original(request, checkpoint)

    scripted.publish = recording  # type: ignore[method-assign]
    rt = make_runtime(settings, factory, publisher=scripted)
    for _ in range(settings.max_attempts):
        post = publish_once(rt, settings, factory)
    assert post.status is S.FAILED
    scripted.errors.clear()
    with session_scope(factory) as s:
        dispatch = trigger(s, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="ed")
    drain(rt, [dispatch])
    with factory() as s:
        attempts = s.scalars(select(PublishAttempt).order_by(PublishAttempt.started_at)).all()
    assert [a.status for a in attempts] == [AttemptStatus.FAILED, AttemptStatus.SUCCEEDED]
    assert post_of(factory, post_id).status is S.PUBLISHED
    assert set(keys) == {f"{attempts[0].id}-g{post.generation}"}
    assert len(keys) == settings.max_attempts + 1
