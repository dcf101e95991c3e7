"""State moves, leases and claims: each move happens once, and the audit trail records it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import (
    TRANSITIONS,
    AttemptStatus,
    Influencer,
    Post,
    PostEvent,
    PostStatus,
    PublishAttempt,
    TargetKind,
)
from pipeline.db import session_scope
from pipeline.errors import InvalidTransition
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch, claim, claim_due
from pipeline.steps.lease import release_lease, take_lease
from pipeline.steps.moves import Step, move
from pipeline.steps.tick import mark_missed, reconcile_expired, tick
from tests.conftest import NOW, add_post

S = PostStatus


def events(session: Session, post_id: int) -> list[tuple[PostStatus | None, PostStatus]]:
    rows = session.execute(
        select(PostEvent.from_status, PostEvent.to_status)
        .where(PostEvent.post_id == post_id)
        .order_by(PostEvent.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def claim_generate(session: Session, post_id: int) -> list[Dispatch]:
    return claim(
        session,
        [post_id],
        step=Step.GENERATE,
        expected=S.PLANNED,
        now=NOW,
        grace_seconds=60,
        actor="t",
    )


def take_generate_lease(session: Session, post_id: int, token: str) -> str | None:
    return take_lease(session, post_id, step=Step.GENERATE, token=token, now=NOW, lease_seconds=60)


def test_every_state_has_an_entry_and_final_states_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(PostStatus)
    assert TRANSITIONS[S.PUBLISHED] == frozenset()
    assert TRANSITIONS[S.CANCELLED] == frozenset()


def test_a_move_updates_the_row_and_writes_one_event(session: Session, influencer_id: int) -> None:
    post_id = add_post(session)
    assert move(session, post_id, expected=S.PLANNED, to=S.CANCELLED, actor="t", detail="why")
    session.expire_all()
    assert session.get_one(Post, post_id).status is S.CANCELLED
    assert events(session, post_id) == [(S.PLANNED, S.CANCELLED)]


def test_a_move_from_the_wrong_state_changes_nothing(session: Session, influencer_id: int) -> None:
    post_id = add_post(session)
    assert not move(session, post_id, expected=S.READY, to=S.PUBLISHING, actor="t")
    session.expire_all()
    assert session.get_one(Post, post_id).status is S.PLANNED
    assert events(session, post_id) == []


def test_an_illegal_move_is_refused_before_touching_the_row(
    session: Session, influencer_id: int
) -> None:
    post_id = add_post(session)
    with pytest.raises(InvalidTransition):
        move(session, post_id, expected=S.PLANNED, to=S.PUBLISHED, actor="t")


def test_a_second_delivery_of_the_same_message_finds_no_lease(
    session: Session, influencer_id: int
) -> None:
    post_id = add_post(session)
    (d,) = claim_generate(session, post_id)
    first = take_generate_lease(session, post_id, d.token)
    second = take_generate_lease(session, post_id, d.token)
    assert first is not None and second is None


def test_a_run_that_lost_its_lease_cannot_finish(session: Session, influencer_id: int) -> None:
    post_id = add_post(session)
    (d,) = claim_generate(session, post_id)
    run_id = take_generate_lease(session, post_id, d.token)
    assert run_id
    assert not release_lease(
        session, post_id, step=Step.GENERATE, run_id="run-other", to=S.GENERATED, actor="t"
    )
    assert release_lease(
        session, post_id, step=Step.GENERATE, run_id=run_id, to=S.GENERATED, actor="t"
    )


def test_claiming_generate_bumps_the_generation(session: Session, influencer_id: int) -> None:
    post_id = add_post(session)
    claim_generate(session, post_id)
    session.expire_all()
    post = session.get_one(Post, post_id)
    assert (post.status, post.generation, post.lease_expires_at) == (
        S.GENERATING,
        1,
        NOW + timedelta(seconds=60),
    )


def test_only_due_posts_of_active_influencers_are_claimed(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    due = add_post(session, at=NOW)
    later = add_post(session, at=NOW + timedelta(hours=2), lead=30)
    dispatches = claim_due(session, settings=settings, now=NOW)
    assert [(d.step, d.post_id) for d in dispatches] == [(Step.GENERATE, due)]
    session.execute(update(Influencer).values(active=False))
    assert claim_due(session, settings=settings, now=NOW + timedelta(hours=2)) == []
    assert later


def test_publish_is_claimed_ahead_of_time_with_an_eta(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = add_post(session, at=NOW + timedelta(seconds=90))
    session.execute(update(Post).values(status=S.READY))
    (d,) = claim_due(session, settings=settings, now=NOW)
    assert (d.step, d.eta) == (Step.PUBLISH, NOW + timedelta(seconds=90))
    assert post_id == d.post_id


def test_a_post_far_ahead_is_not_sent_to_the_broker(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    add_post(session, at=NOW + timedelta(hours=5))
    session.execute(update(Post).values(status=S.READY))
    assert claim_due(session, settings=settings, now=NOW) == []


def _expire(session: Session, post_id: int, status: PostStatus, attempts: int = 0) -> None:
    session.execute(
        update(Post)
        .where(Post.id == post_id)
        .values(
            status=status,
            lease_owner="run-dead",
            lease_expires_at=NOW - timedelta(seconds=1),
            attempts=attempts,
        )
    )


@pytest.mark.parametrize(
    ("stuck", "back"),
    [(S.GENERATING, S.PLANNED), (S.RENDERING, S.GENERATED), (S.PUBLISHING, S.READY)],
)
def test_an_expired_lease_returns_the_post_to_its_stable_state(
    settings: Settings, session: Session, influencer_id: int, stuck: PostStatus, back: PostStatus
) -> None:
    post_id = add_post(session)
    _expire(session, post_id, stuck)
    assert reconcile_expired(session, settings=settings, now=NOW) == (1, 0)
    session.expire_all()
    post = session.get_one(Post, post_id)
    assert (post.status, post.attempts, post.lease_owner) == (back, 1, None)
    assert "lease expired" in (post.last_error or "")


def test_an_approved_post_returns_to_approved(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = add_post(session)
    _expire(session, post_id, S.PUBLISHING)
    session.execute(update(Post).values(approved_at=NOW))
    reconcile_expired(session, settings=settings, now=NOW)
    session.expire_all()
    assert session.get_one(Post, post_id).status is S.APPROVED


def test_expired_leases_fail_for_good_after_the_last_attempt(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = add_post(session)
    _expire(session, post_id, S.GENERATING, attempts=settings.max_attempts - 1)
    assert reconcile_expired(session, settings=settings, now=NOW) == (0, 1)
    session.expire_all()
    assert session.get_one(Post, post_id).status is S.FAILED


def test_a_slot_long_past_is_missed_not_published(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    stale = add_post(session, at=NOW - timedelta(hours=1))
    fresh = add_post(session, at=NOW - timedelta(minutes=5))
    assert mark_missed(session, settings=settings, now=NOW) == 1
    session.expire_all()
    assert session.get_one(Post, stale).status is S.MISSED
    assert session.get_one(Post, fresh).status is S.PLANNED


def test_a_second_tick_claims_nothing_twice(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    with session_scope(factory) as s:
        add_post(s, at=NOW)
    with session_scope(factory) as s:
        first = tick(s, settings=settings, now=NOW)
    with session_scope(factory) as s:
        second = tick(s, settings=settings, now=NOW)
    assert len(first.dispatches) == 1 and second.dispatches == []


def test_a_ready_post_past_the_grace_window_is_never_published_late(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    stale = add_post(session, at=NOW - timedelta(seconds=settings.grace_seconds + 1))
    recent = add_post(session, at=NOW - timedelta(seconds=settings.grace_seconds - 1))
    session.execute(update(Post).values(status=S.READY))
    # Even a worker's follow-up claim (outside the tick) leaves the stale one for mark_missed.
    assert [d.post_id for d in claim_due(session, settings=settings, now=NOW)] == [recent]
    assert mark_missed(session, settings=settings, now=NOW) == 1
    session.expire_all()
    assert session.get_one(Post, stale).status is S.MISSED


def test_a_claim_no_worker_took_costs_no_try(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = add_post(session)
    claim(
        session,
        [post_id],
        step=Step.GENERATE,
        expected=S.PLANNED,
        now=NOW - timedelta(hours=1),
        grace_seconds=60,
        actor="beat",
    )  # the message was lost before any worker saw it
    for _ in range(settings.max_attempts + 1):
        reconcile_expired(session, settings=settings, now=NOW)
        session.expire_all()
        post = session.get_one(Post, post_id)
        assert (post.status, post.attempts) == (S.PLANNED, 0)
        claim(
            session,
            [post_id],
            step=Step.GENERATE,
            expected=S.PLANNED,
            now=NOW - timedelta(hours=1),
            grace_seconds=60,
            actor="beat",
        )


def _open_attempt(session: Session, post_id: int, publish_requested: str | None) -> None:
    session.add(
        PublishAttempt(
            id=f"a-{post_id}",
            post_id=post_id,
            target_kind=TargetKind.OUTBOX,
            container_id="c-1",
            publish_requested=publish_requested,
        )
    )
    session.flush()


def test_a_publish_that_may_be_out_ends_unknown_not_failed(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = add_post(session)
    _expire(session, post_id, S.PUBLISHING, attempts=settings.max_attempts - 1)
    _open_attempt(session, post_id, publish_requested="c-1")
    assert reconcile_expired(session, settings=settings, now=NOW) == (0, 1)
    session.expire_all()
    post = session.get_one(Post, post_id)
    assert post.status is S.UNKNOWN and "ryla post resolve" in (post.last_error or "")
    attempt = session.scalars(select(PublishAttempt)).one()
    assert attempt.status is AttemptStatus.UNKNOWN  # closed: a person settles it


def test_a_publish_in_flight_is_resumed_however_late_never_marked_missed(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = add_post(session, at=NOW - timedelta(hours=3))
    session.execute(update(Post).values(status=S.READY))
    _open_attempt(session, post_id, publish_requested=None)
    assert mark_missed(session, settings=settings, now=NOW) == 0
    (d,) = claim_due(session, settings=settings, now=NOW)
    assert (d.step, d.post_id) == (Step.PUBLISH, post_id)
