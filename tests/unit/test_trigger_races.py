"""Two people (or a person and the beat) acting on one post at once: the second is told what
the post is now, and never answered as if its request had been carried out."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import Post, PostEvent, PostStatus
from pipeline.db import session_scope
from pipeline.errors import InputError
from pipeline.settings import Settings
from pipeline.steps.moves import Step
from pipeline.steps.triggers import approve, cancel, edit_caption, reject, trigger
from tests.conftest import NOW, add_post

S = PostStatus


def _post_in(factory: sessionmaker[Session], status: PostStatus) -> int:
    with session_scope(factory) as s:
        post_id = add_post(s)
        s.execute(update(Post).where(Post.id == post_id).values(status=status, caption="hi"))
    return post_id


def _race(
    factory: sessionmaker[Session],
    post_id: int,
    first: Callable[[Session], object],
    second: Callable[[Session], object],
) -> InputError:
    """``second`` read the post before ``first`` committed, then acts on what it read.

    (SQLite serialises whole transactions, so the stale read is kept past a commit here; on
    PostgreSQL, read committed, it is the same read inside one transaction.)
    """
    with factory(expire_on_commit=False) as late:
        stale = late.get_one(Post, post_id)  # held: the identity map keeps it only while used
        late.commit()
        with session_scope(factory) as early:
            first(early)
        with pytest.raises(InputError) as refused:
            second(late)
        del stale
        late.rollback()
    return refused.value


def _moves(factory: sessionmaker[Session], post_id: int) -> list[tuple[str, str]]:
    with factory() as s:
        events = s.execute(
            select(PostEvent.from_status, PostEvent.to_status)
            .where(PostEvent.post_id == post_id)
            .order_by(PostEvent.id)
        )
        return [(str(a), str(b)) for a, b in events if a != b]


def test_a_reject_that_loses_to_an_approve_says_so(
    factory: sessionmaker[Session], settings: Settings, influencer_id: int
) -> None:
    post_id = _post_in(factory, S.AWAITING_APPROVAL)
    refused = _race(
        factory,
        post_id,
        lambda s: approve(s, post_id, settings=settings, now=NOW, actor="ana"),
        lambda s: reject(s, post_id, note="not this one", actor="ed"),
    )
    # The approval claimed its publish at once: that is the state the loser is told.
    assert str(refused).startswith(f"post {post_id} is publishing: only posts awaiting approval")
    assert _moves(factory, post_id) == [
        ("awaiting_approval", "approved"),
        ("approved", "publishing"),
    ]


def test_an_approve_that_loses_to_a_reject_claims_nothing(
    factory: sessionmaker[Session], settings: Settings, influencer_id: int
) -> None:
    post_id = _post_in(factory, S.AWAITING_APPROVAL)
    refused = _race(
        factory,
        post_id,
        lambda s: reject(s, post_id, note="not this one", actor="ed"),
        lambda s: approve(s, post_id, settings=settings, now=NOW, actor="ana"),
    )
    assert str(refused).startswith(f"post {post_id} is cancelled: only posts awaiting approval")
    with factory() as s:
        post = s.get_one(Post, post_id)
        assert (post.status, post.lease_owner, post.approved_at) == (S.CANCELLED, None, None)


def test_a_caption_edit_after_a_claim_is_refused_not_lost(
    factory: sessionmaker[Session], settings: Settings, influencer_id: int
) -> None:
    post_id = _post_in(factory, S.READY)
    refused = _race(
        factory,
        post_id,
        lambda s: trigger(s, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="beat"),
        lambda s: edit_caption(s, post_id, text="changed", actor="ed"),
    )
    assert str(refused).startswith(f"post {post_id} is publishing now: it moved on")
    with factory() as s:
        assert s.get_one(Post, post_id).caption == "hi"


def test_a_trigger_that_loses_to_the_beat_is_one_clear_refusal(
    factory: sessionmaker[Session], settings: Settings, influencer_id: int
) -> None:
    post_id = _post_in(factory, S.READY)
    refused = _race(
        factory,
        post_id,
        lambda s: trigger(s, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="beat"),
        lambda s: trigger(s, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="ed"),
    )
    assert str(refused).startswith(f"post {post_id} is publishing now: it moved on")


def test_a_cancel_that_loses_names_the_state_it_lost_to(
    factory: sessionmaker[Session], settings: Settings, influencer_id: int
) -> None:
    post_id = _post_in(factory, S.AWAITING_APPROVAL)
    refused = _race(
        factory,
        post_id,
        lambda s: reject(s, post_id, note="no", actor="ed"),
        lambda s: cancel(s, post_id, actor="ana"),
    )
    assert str(refused) == f"post {post_id} is cancelled and can no longer be cancelled"
