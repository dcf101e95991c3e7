"""Claims no worker has started live a short grace past their own time, then are sent again
under the same token: a dead worker's or a lost message's posts are back within about a tick,
whichever copy of a message arrives first runs, and waiting costs no try."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models import Influencer, Post, PostEvent, PostStatus
from pipeline.db import session_scope
from pipeline.settings import Settings
from pipeline.steps.claims import batch_dispatches, claim_due, resend_untaken
from pipeline.steps.moves import Step, take_lease
from pipeline.steps.run import run_step
from pipeline.steps.tick import tick
from tests.conftest import NOW, add_post
from tests.fakes.steps_kit import make_runtime, post_of

S = PostStatus


def ready(session: Session, **kwargs: object) -> int:
    post_id = add_post(session, **kwargs)  # type: ignore[arg-type]
    session.execute(update(Post).where(Post.id == post_id).values(status=S.READY))
    return post_id


def lease_of(session: Session, post_id: int) -> tuple[str | None, object]:
    session.expire_all()
    post = session.get_one(Post, post_id)
    return post.lease_owner, post.lease_expires_at


def test_a_claim_ahead_lives_a_grace_past_its_own_time_not_the_batchs(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    soon = ready(session, at=NOW + timedelta(seconds=30))
    later = ready(session, at=NOW + timedelta(seconds=110))
    claimed = {d.post_id: d for d in claim_due(session, settings=settings, now=NOW)}
    assert claimed[soon].token == claimed[later].token  # one batch, one message each
    grace = timedelta(seconds=settings.claim_grace_seconds)
    assert lease_of(session, soon)[1] == NOW + timedelta(seconds=30) + grace
    assert lease_of(session, later)[1] == NOW + timedelta(seconds=110) + grace


def test_a_claim_due_now_lives_a_grace_from_now(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = add_post(session, at=NOW)
    claim_due(session, settings=settings, now=NOW)
    assert lease_of(session, post_id)[1] == NOW + timedelta(seconds=settings.claim_grace_seconds)


def test_an_untaken_claim_is_sent_again_under_its_token_and_costs_nothing(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = ready(session, at=NOW)
    (first,) = claim_due(session, settings=settings, now=NOW)
    events = session.scalar(select(func.count()).select_from(PostEvent))
    grace = timedelta(seconds=settings.claim_grace_seconds)
    assert resend_untaken(session, settings=settings, now=NOW + grace) == []  # not yet
    later = NOW + grace + timedelta(seconds=1)
    (again,) = resend_untaken(session, settings=settings, now=later)
    assert (again.step, again.post_id, again.token, again.eta) == (
        Step.PUBLISH,
        post_id,
        first.token,
        None,
    )
    post = session.get_one(Post, post_id)
    assert (post.status, post.attempts, post.lease_expires_at) == (S.PUBLISHING, 0, later + grace)
    assert session.scalar(select(func.count()).select_from(PostEvent)) == events  # no move


def test_whichever_copy_arrives_first_runs_and_the_other_finds_nothing(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = ready(session, at=NOW)
    (first,) = claim_due(session, settings=settings, now=NOW)
    later = NOW + timedelta(seconds=settings.claim_grace_seconds + 1)
    (again,) = resend_untaken(session, settings=settings, now=later)

    def take(token: str) -> str | None:
        return take_lease(
            session, post_id, step=Step.PUBLISH, token=token, now=later, lease_seconds=60
        )

    assert take(again.token) is not None and take(first.token) is None


def test_a_run_a_worker_started_is_never_sent_again(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    post_id = ready(session, at=NOW)
    (first,) = claim_due(session, settings=settings, now=NOW)
    take_lease(session, post_id, step=Step.PUBLISH, token=first.token, now=NOW, lease_seconds=20)
    assert resend_untaken(session, settings=settings, now=NOW + timedelta(minutes=5)) == []


def test_an_untaken_claim_of_a_paused_account_is_not_sent_again(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    ready(session, at=NOW)
    claim_due(session, settings=settings, now=NOW)
    session.execute(update(Influencer).values(active=False))
    assert resend_untaken(session, settings=settings, now=NOW + timedelta(minutes=1)) == []


def test_an_untaken_publish_past_the_grace_window_is_returned_and_missed(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    with session_scope(factory) as s:
        post_id = ready(s, at=NOW)
        claim_due(s, settings=settings, now=NOW)
    much_later = NOW + timedelta(seconds=settings.grace_seconds + 60)
    with session_scope(factory) as s:
        report = tick(s, settings=settings, now=much_later)
    assert (report.resent, report.dispatches) == (0, [])
    assert post_of(factory, post_id).status is S.MISSED


def test_generate_claims_sent_again_keep_their_batch(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    ids = [add_post(session, at=NOW + timedelta(seconds=i)) for i in range(3)]
    claim_due(session, settings=settings, now=NOW + timedelta(seconds=2))
    later = NOW + timedelta(seconds=settings.claim_grace_seconds + 3)
    again = resend_untaken(session, settings=settings, now=later)
    (group,) = batch_dispatches(again, 4)
    assert sorted(d.post_id for d in group) == ids


def test_a_dead_workers_claimed_ahead_publish_goes_out_a_grace_and_a_tick_after_its_time(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    """Issue 10, item 3: the io worker holding the ETA message died; the beat ticks on."""
    due = NOW + timedelta(seconds=90)
    with session_scope(factory) as s:
        post_id = add_post(s, at=due, lead=2)
    rt = make_runtime(settings, factory)
    with session_scope(factory) as s:
        (gen,) = tick(s, settings=settings, now=NOW).dispatches
    (ren,) = run_step(rt, gen.step, gen.post_id, gen.token)
    (ahead,) = run_step(rt, ren.step, ren.post_id, ren.token)
    assert (ahead.step, ahead.eta) == (Step.PUBLISH, due)  # held by a worker that now dies
    moment, resent = NOW, []
    while not resent:  # the beat ticks every tick_seconds
        moment += timedelta(seconds=settings.tick_seconds)
        with session_scope(factory) as s:
            resent = tick(s, settings=settings, now=moment).dispatches
    rt.clock = lambda: moment
    for dispatch in resent:
        run_step(rt, dispatch.step, dispatch.post_id, dispatch.token)
    post = post_of(factory, post_id)
    assert post.status is S.PUBLISHED
    late = timedelta(seconds=settings.claim_grace_seconds + settings.tick_seconds)
    assert due < moment <= due + late
