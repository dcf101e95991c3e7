"""The read side every door shares: calendars by the influencer's local day, the feed as the
profile will show it, the approval queue most urgent first, cursors that say when they are bad.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models import Post, PostStatus
from pipeline.browse import calendar as calendar_module
from pipeline.browse.calendar import calendar_view, month_grid_start
from pipeline.browse.feed import feed_grid
from pipeline.browse.overview import overview
from pipeline.browse.posts import PostFilter, decode_cursor, encode_cursor, list_posts
from pipeline.browse.review import review_queue
from pipeline.db import session_scope
from pipeline.errors import InputError
from tests.conftest import NOW, add_influencer, add_post

S = PostStatus


def set_status(session: Session, post_id: int, status: PostStatus) -> None:
    session.execute(update(Post).where(Post.id == post_id).values(status=status))


def test_a_calendar_files_posts_under_the_influencers_local_day(
    factory: sessionmaker[Session],
) -> None:
    late = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 00:30 on 1 December in Berlin
    with session_scope(factory) as s:
        add_influencer(s)
        cancelled = add_post(s, at=late)
        set_status(s, cancelled, S.CANCELLED)  # a cancelled post gives its instant back
        post_id = add_post(s, at=late)
    with factory() as s:
        shown = calendar_view(s, first=month_grid_start(date(2026, 12, 1)), days=42, handle="mia")
        by_day = {cell.day: [row.id for row in cell.posts] for cell in shown.days}
        everyone = calendar_view(s, first=date(2026, 11, 30), days=7, handle=None)
    assert shown.zone == "Europe/Berlin" and by_day[date(2026, 12, 1)] == [post_id]
    assert by_day[date(2026, 11, 30)] == []
    assert [row.id for row in everyone.days[0].posts] == [post_id]  # in UTC it is 30 November


def test_across_everyone_a_crowded_day_shows_a_few_and_counts_the_rest_up_to_a_cap(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calendar_module, "MORE_CAP", 5)
    with session_scope(factory) as s:
        add_influencer(s)
        for minute in range(9):
            add_post(s, at=NOW + timedelta(minutes=minute))
    with factory() as s:
        day = calendar_view(s, first=NOW.date(), days=7, handle=None, per_day=3).days[0]
    assert (len(day.posts), day.more, day.more_capped) == (3, 5, True)
    with factory() as s:
        day = calendar_view(s, first=NOW.date(), days=7, handle=None, per_day=6).days[0]
    assert (len(day.posts), day.more, day.more_capped) == (6, 3, False)


def test_the_feed_is_newest_first_and_leaves_out_what_will_never_be_on_the_profile(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as s:
        add_influencer(s)
        ids = [add_post(s, at=NOW + timedelta(hours=i)) for i in range(4)]
        set_status(s, ids[0], S.PUBLISHED)
        set_status(s, ids[1], S.FAILED)
        set_status(s, ids[2], S.CANCELLED)
    with factory() as s:
        assert [row.id for row in feed_grid(s, handle="mia")] == [ids[3], ids[0]]


def test_the_queue_puts_approvals_first_and_offers_what_each_state_allows(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as s:
        add_influencer(s)
        failed, waiting, unknown = (add_post(s, at=NOW + timedelta(hours=i)) for i in range(3))
        set_status(s, failed, S.FAILED)
        set_status(s, waiting, S.AWAITING_APPROVAL)
        set_status(s, unknown, S.UNKNOWN)
    with factory() as s:
        queue = review_queue(s)
        seen = overview(s, now=NOW)
    assert [item.row.id for item in queue.items] == [waiting, unknown, failed]
    assert queue.items[0].actions == ("approve", "reject", "regenerate", "caption")
    assert queue.counts == {"awaiting_approval": 1, "failed": 1, "unknown": 1}
    assert seen.needs_person == 3 and seen.generator is None


def test_a_cursor_round_trips_and_a_forged_one_is_named_as_such(
    factory: sessionmaker[Session],
) -> None:
    assert decode_cursor(encode_cursor(NOW, 42)) == (NOW, 42)
    with session_scope(factory) as s:
        add_influencer(s)
    with factory() as s, pytest.raises(InputError, match="cursor 'nope'"):
        list_posts(s, filters=PostFilter(), cursor="nope")
    with factory() as s, pytest.raises(InputError, match="no zone"):
        list_posts(s, filters=PostFilter(start=datetime(2026, 1, 1)))
