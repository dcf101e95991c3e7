"""The scan finds what a person must hear about in the database, and composes one message per
channel, cause and window; later alerts wait for the next window, none is told twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models import (
    Alert,
    ContentCalendar,
    Notification,
    Post,
    PostStatus,
    PublishTarget,
    SlotRule,
    TargetKind,
)
from pipeline.db import session_scope
from pipeline.errors import QuotaExceeded, TransientPublishError
from pipeline.notify.compose import window_start
from pipeline.observe.workers import Beat, record_heartbeat
from pipeline.settings import Settings
from tests.calendar_kit import make_calendar
from tests.conftest import NOW, add_post
from tests.notify_kit import add_channel, messages, move_post, scan
from tests.unit.test_runner import RecordingPublisher, drain, first_tick, make_runtime

S = PostStatus
HOUR = timedelta(hours=1)


def new_post(factory: sessionmaker[Session], **kwargs: object) -> int:
    """A post a second after the last one: one influencer holds one post per instant."""
    with session_scope(factory) as s:
        taken = s.scalar(select(func.count()).select_from(Post)) or 0
        kwargs.setdefault("at", NOW + timedelta(seconds=taken))
        return add_post(s, **kwargs)


@pytest.fixture
def start(settings: Settings, factory: sessionmaker[Session], influencer_id: int) -> int:
    """A channel with one-hour windows and a first scan (the cursor starts there)."""
    channel = add_channel(factory, settings, window_seconds=3600)
    scan(factory, settings, NOW)
    return channel


def test_a_failed_post_is_told_once_with_what_to_do(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    post_id = new_post(factory)
    move_post(factory, post_id, S.FAILED, via=(S.GENERATING,), detail="generate failed: boom")
    first = scan(factory, settings, NOW + timedelta(minutes=1))
    again = scan(factory, settings, NOW + timedelta(minutes=2))
    (message,) = messages(factory)
    assert (first.alerts, first.composed, again.alerts, again.composed) == (1, 1, 0, 0)
    assert message.title == "RYLA: a post failed"
    assert f"post #{post_id} @mia" in message.body and "generate failed: boom" in message.body
    assert f"`ryla post show {post_id}`" in message.body
    assert first.due == [message.id] and again.due == []  # handed to the io queue once


def test_the_first_scan_starts_where_the_first_channel_was_added(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    old, new = new_post(factory), new_post(factory)
    move_post(factory, old, S.FAILED, via=(S.GENERATING,), at=NOW - timedelta(days=1))
    add_channel(factory, settings, now=NOW - timedelta(minutes=5))
    move_post(factory, new, S.FAILED, via=(S.GENERATING,), at=NOW - timedelta(minutes=1))
    assert scan(factory, settings, NOW).alerts == 1  # news since the channel, not history
    (message,) = messages(factory)
    assert f"post #{new} " in message.body and f"post #{old} " not in message.body


def test_a_second_failure_in_the_window_waits_for_the_next_window(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    first, second, third = (new_post(factory) for _ in range(3))
    window = window_start(NOW, 3600)
    move_post(factory, first, S.FAILED, via=(S.GENERATING,))
    scan(factory, settings, window + timedelta(minutes=10))
    move_post(factory, second, S.FAILED, via=(S.GENERATING,))
    move_post(factory, third, S.FAILED, via=(S.GENERATING,))
    held = scan(factory, settings, window + timedelta(minutes=50))
    assert held.alerts == 2 and held.composed == 0  # found, and held back
    scan(factory, settings, window + HOUR + timedelta(seconds=1))
    one, two = messages(factory, "post_failed")
    assert (one.window_start, two.window_start) == (window, window + HOUR)
    assert f"#{first} " in one.body and f"#{second} " not in one.body
    assert two.title == "RYLA: 2 posts failed"
    assert f"#{second} " in two.body and f"#{third} " in two.body and f"#{first} " not in two.body


def test_unknown_and_missed_posts_are_told_with_their_own_hints(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    unknown, missed = new_post(factory), new_post(factory)
    move_post(
        factory,
        unknown,
        S.UNKNOWN,
        via=(S.GENERATING, S.GENERATED, S.RENDERING, S.READY, S.PUBLISHING),
    )
    move_post(factory, missed, S.MISSED)
    scan(factory, settings, NOW + timedelta(minutes=1))
    by_cause = {m.cause: m for m in messages(factory)}
    assert set(by_cause) == {"post_unknown", "post_missed"}
    assert f"ryla post resolve {unknown} --published" in by_cause["post_unknown"].body
    assert "nothing will be posted for this slot" in by_cause["post_missed"].body


def test_a_target_needing_a_token_is_told_once_while_it_lasts(
    settings: Settings, factory: sessionmaker[Session], start: int, influencer_id: int
) -> None:
    with session_scope(factory) as s:
        s.add(
            PublishTarget(
                influencer_id=influencer_id,
                name="mia-ig",
                kind=TargetKind.INSTAGRAM,
                needs_reauth=True,
            )
        )
    for minutes in (1, 30, 61, 125):
        scan(factory, settings, NOW + timedelta(minutes=minutes))
    (message,) = messages(factory, "target_reauth")
    assert "`ryla target token mia-ig`" in message.body
    with session_scope(factory) as s:  # a new token, then refused again: a new episode
        s.execute(update(PublishTarget).values(needs_reauth=False))
    scan(factory, settings, NOW + timedelta(hours=3))
    with session_scope(factory) as s:
        s.execute(update(PublishTarget).values(needs_reauth=True))
    scan(factory, settings, NOW + timedelta(hours=4))
    assert len(messages(factory, "target_reauth")) == 2


def test_a_full_quota_is_found_from_what_the_failure_policy_recorded(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    post_id = new_post(factory)
    refusal = QuotaExceeded(
        "Instagram publishing quota used up (100/100 in 24 h); waiting for the window to free",
        retry_at=NOW + 3 * HOUR,
    )
    runtime = make_runtime(settings, factory, publisher=RecordingPublisher(fail_with=refusal))
    drain(runtime, first_tick(settings, factory))
    with factory() as s:
        assert s.get_one(Post, post_id).status is S.READY  # waiting, no try spent
    scan(factory, settings, NOW + timedelta(minutes=1))
    (message,) = messages(factory, "quota_full")
    assert "@mia: the publishing quota is used up; 1 post(s) wait until" in message.body
    scan(factory, settings, NOW + 4 * HOUR)  # the window freed: the condition is over
    with factory() as s:
        assert s.scalar(select(Alert.resolved_at).where(Alert.cause == "quota_full")) is not None


def test_a_quota_that_could_not_be_read_is_no_full_quota(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    new_post(factory)
    away = TransientPublishError(
        "Instagram quota read: could not reach graph.instagram.com (ConnectError)"
    )
    runtime = make_runtime(settings, factory, publisher=RecordingPublisher(fail_with=away))
    drain(runtime, first_tick(settings, factory))
    scan(factory, settings, NOW + timedelta(seconds=1))  # while it waits for its next try
    assert messages(factory, "quota_full") == []


def test_no_gpu_worker_is_told_only_while_posts_wait_to_generate(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    silence = timedelta(seconds=settings.gpu_silence_seconds)
    with session_scope(factory) as s:
        beat = Beat("gpu0@box", "worker", "gpu", 42, "ready")
        record_heartbeat(s, beat, now=NOW)
    scan(factory, settings, NOW + silence * 2)
    assert messages(factory, "gpu_missing") == []  # nothing waits for a GPU
    new_post(factory, at=NOW + silence)
    scan(factory, settings, NOW + silence * 2)
    (message,) = messages(factory, "gpu_missing")
    assert "no GPU worker seen since 2026-11-26 12:00 UTC; 1 post(s) wait" in message.body
    with session_scope(factory) as s:
        record_heartbeat(s, beat, now=NOW + silence * 3)
    scan(factory, settings, NOW + silence * 3)
    with factory() as s:
        assert s.scalar(select(Alert.resolved_at).where(Alert.cause == "gpu_missing")) is not None


def test_a_channel_hears_only_its_causes(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    add_channel(factory, settings, "missed-only", causes=["post_missed"])
    failed, missed = new_post(factory), new_post(factory)
    move_post(factory, failed, S.FAILED, via=(S.GENERATING,))
    move_post(factory, missed, S.MISSED)
    scan(factory, settings, NOW + timedelta(minutes=1))
    with factory() as s:
        rows = s.execute(select(Notification.channel_id, Notification.cause)).all()
    assert sorted(cause for channel, cause in rows if channel != start) == ["post_missed"]
    assert sorted(cause for channel, cause in rows if channel == start) == [
        "post_failed",
        "post_missed",
    ]


def test_the_daily_digest_goes_once_at_its_local_time(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    # NOW is 12:00 UTC = 13:00 in Berlin: the 14:00 digest is due at 13:00 UTC.
    add_channel(
        factory, settings, "daily", immediate=False, digest_at="14:00", timezone="Europe/Berlin"
    )
    scan(factory, settings, NOW)
    published = new_post(factory)
    move_post(factory, published, S.FAILED, via=(S.GENERATING,), at=NOW)
    scan(factory, settings, NOW + timedelta(minutes=59))
    assert messages(factory) == []  # not yet, and no immediate messages on this channel
    for minutes in (61, 90, 24 * 60 - 1):
        scan(factory, settings, NOW + timedelta(minutes=minutes))
    (digest,) = messages(factory)
    assert digest.title == "RYLA: daily digest for 2026-11-26"
    assert "last 24 h: 0 published, 1 failed, 0 missed, 0 unknown" in digest.body
    assert f"post #{published} @mia" in digest.body
    scan(factory, settings, NOW + timedelta(hours=25))
    assert len(messages(factory)) == 2  # the next day's


def test_the_database_refuses_a_second_message_for_one_cause_and_window(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    row = {
        "channel_id": start,
        "cause": "post_failed",
        "window_start": NOW,
        "title": "t",
        "body": "b",
        "items": [],
    }
    with pytest.raises(IntegrityError), session_scope(factory) as s:
        s.execute(insert(Notification), [{**row, "id": "a" * 36}, {**row, "id": "b" * 36}])


def test_events_younger_than_the_settle_time_are_read_again_and_told_once(
    settings: Settings, factory: sessionmaker[Session], start: int
) -> None:
    post_id = new_post(factory)
    move_post(factory, post_id, S.FAILED, via=(S.GENERATING,), at=NOW)
    for seconds in (1, 20, 59, 61, 200):
        scan(factory, settings, NOW + timedelta(seconds=seconds))
    assert len(messages(factory)) == 1
    with factory() as s:
        assert s.scalar(select(Alert.id).where(Alert.ref == f"post:{post_id}")) is not None


def test_a_broken_calendar_is_told_once_planning_marks_it(
    settings: Settings,
    factory: sessionmaker[Session],
    start: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Planning marks a calendar broken with its reason (issue 11's column): stood in for here
    by the caption text of a calendar's first rule, which is what the scan would read."""
    with session_scope(factory) as s:
        make_calendar(s, settings, "mia", "daily", days="daily", times="09:00")
    reason = (
        select(SlotRule.caption_text)
        .where(SlotRule.calendar_id == ContentCalendar.id)
        .limit(1)
        .scalar_subquery()
    )
    monkeypatch.setattr(ContentCalendar, "broken_reason", reason, raising=False)
    with session_scope(factory) as s:
        s.execute(update(SlotRule).values(caption_text="caption template overflows 2,200"))
    scan(factory, settings, NOW + timedelta(minutes=1))
    scan(factory, settings, NOW + 2 * HOUR)
    (message,) = messages(factory, "calendar_broken")
    assert "calendar mia/daily is broken and plans nothing: caption template overflows" in (
        message.body
    )
    assert "`ryla calendar edit mia daily`" in message.body
