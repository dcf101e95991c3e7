"""A publish in doubt, against the fake Graph API: once a media_publish may have reached
Instagram the post is never re-sent through a new container, whatever later calls answer, and
its media id is found from facts (time, type, caption, ids other posts hold), never guessed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pipeline.errors import OutcomeUnknown, PublishError, Throttled, TransientPublishError
from pipeline.publishers.base import PublishRequest
from pipeline.publishers.graph_api import PollPolicy
from pipeline.publishers.graph_errors import GraphThrottled, PublishingRestricted
from pipeline.publishers.instagram import InstagramPublisher
from tests.fakes.graph_api import FakeGraphApi
from tests.fakes.media_server import FakeMediaHost
from tests.fakes.publish_kit import CheckpointLog, make_jpeg, media_item, publish_request

TOKEN = "IGAAfakeTOKEN0123456789secret"
CAPTION = "Same caption for every slot #travel"


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi(access_token=TOKEN, processing_seconds=0.02) as fake:
        yield fake


def publisher(graph: FakeGraphApi, client: httpx.Client, **poll: Any) -> InstagramPublisher:
    return InstagramPublisher(
        client=client,
        base_url=graph.base_url,
        ig_user_id=graph.ig_user_id,
        access_token=TOKEN,
        poll=PollPolicy(first_delay=0.01, factor=1.5, max_delay=0.05, **poll),
        clock=lambda: datetime.now(UTC),
    )


def post(
    media: FakeMediaHost,
    *,
    post_id: int = 7,
    resume: dict[str, str] | None = None,
    known: frozenset[str] = frozenset(),
    media_type: str = "image",
) -> PublishRequest:
    data = make_jpeg(64, 64)
    item = media_item(media.put(f"posts/{post_id}/a.jpg", data), data)
    request = publish_request(
        item, post_id=post_id, caption=CAPTION, resume=resume, media_type=media_type
    )
    started = datetime.now(UTC) - timedelta(seconds=5)
    return dataclasses.replace(request, not_before=started, known_media_ids=known)


def never_cleared(log: CheckpointLog) -> bool:
    return ("publish_requested", "") not in log.calls


def test_a_throttled_publish_after_a_lost_answer_keeps_the_post_in_doubt(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    """Issue 10, item 1: the answer is lost, the container still reads FINISHED, the second
    media_publish is refused; the first lands later. Nothing may clear "may be out"."""
    graph.drop_after_publish(lands_after=0.4)
    graph.throttle_next(1, route="publish", skip=1, regain_minutes=0)
    log = CheckpointLog()
    with pytest.raises(GraphThrottled):
        publisher(graph, client).publish(post(media), log)
    container = log.resume["container_id"]
    assert log.resume["publish_requested"] == container and never_cleared(log)

    time.sleep(0.5)  # the first publish lands
    result = publisher(graph, client).publish(post(media, resume=log.resume), CheckpointLog())
    [published] = graph.published
    assert result.external_id == published.media_id
    assert graph.calls("create") == 1  # never a second container


def test_a_permanent_refusal_after_a_lost_answer_never_clears_the_doubt(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.drop_after_publish(lands_after=5.0)
    # Meta refuses the second media_publish outright (suspected spam).
    graph.error_next("publish", code=4, subcode=2207051, message="spam", skip=1)
    log = CheckpointLog()
    with pytest.raises(PublishingRestricted):
        publisher(graph, client).publish(post(media), log)
    assert log.resume["publish_requested"] == log.resume["container_id"]
    assert never_cleared(log)


def test_a_resumed_attempt_in_doubt_is_never_cleared_by_a_refusal(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    first = CheckpointLog()
    graph.throttle_next(1, route="publish", regain_minutes=0)
    with pytest.raises(GraphThrottled):
        publisher(graph, client).publish(post(media), first)
    container = first.resume["container_id"]
    # A run died mid-call: the attempt row says the publish may be out.
    resume = {"container_id": container, "publish_requested": container}
    graph.throttle_next(1, route="publish", regain_minutes=0)
    log = CheckpointLog()
    with pytest.raises(GraphThrottled):
        publisher(graph, client).publish(post(media, resume=resume), log)
    assert never_cleared(log) and graph.calls("create") == 1


def test_a_refusal_with_nothing_in_doubt_frees_the_container(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.throttle_next(1, route="publish", regain_minutes=0)
    log = CheckpointLog()
    with pytest.raises(GraphThrottled):
        publisher(graph, client).publish(post(media), log)
    assert log.resume["publish_requested"] == ""  # a definite refusal, and nothing before it


def test_a_container_in_error_after_a_lost_answer_is_unknown_not_replaced(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.drop_after_publish(lands_after=60.0)
    graph.fail_next(100, route="status", after="publish")
    with pytest.raises(OutcomeUnknown, match="resolve 7"):
        publisher(graph, client, verify_checks=2).publish(post(media), CheckpointLog())
    assert graph.calls("create") == 1


def test_the_media_id_after_a_lost_answer_is_not_taken_from_a_post_with_the_same_caption(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    """Issue 10, item 6: a calendar's shared caption; the other post's id is known."""
    other = publisher(graph, client).publish(post(media, post_id=8), CheckpointLog())
    graph.drop_after_publish()
    request = post(media, known=frozenset({other.external_id}))
    result = publisher(graph, client).publish(request, CheckpointLog())
    assert len(graph.published) == 2
    assert result.external_id == graph.published[1].media_id != other.external_id


def test_two_posts_in_doubt_with_one_caption_are_unknown_never_guessed(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.drop_after_publish(2)
    results: list[PublishError] = []
    for post_id in (7, 8):
        try:
            publisher(graph, client).publish(post(media, post_id=post_id), CheckpointLog())
        except PublishError as exc:
            results.append(exc)
    assert len(graph.published) == 2
    assert [type(e) for e in results] == [OutcomeUnknown]  # the first had only itself to find
    assert "2 media published in the same minutes fit it" in str(results[0])


def test_a_post_made_by_hand_in_the_same_minutes_is_not_taken(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    by_hand = publish_request(
        media_item(media.put("hand.jpg", make_jpeg(64, 64)), make_jpeg(64, 64)),
        caption="posted from the phone",
    )
    publisher(graph, client).publish(by_hand, CheckpointLog())
    graph.drop_after_publish()
    result = publisher(graph, client).publish(post(media), CheckpointLog())
    assert result.external_id == graph.published[1].media_id


def test_a_story_in_doubt_is_found_among_the_stories(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    data = make_jpeg(72, 128)
    item = media_item(media.put("story.jpg", data), data, fmt="story")
    request = publish_request(item, media_type="story")
    graph.drop_after_publish()
    result = publisher(graph, client).publish(request, CheckpointLog())
    assert result.external_id == graph.published[0].media_id
    assert graph.calls("stories") == 1 and graph.calls("media_list") == 0


def test_a_published_container_not_listed_yet_is_asked_again_and_stays_in_doubt(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.drop_after_publish()
    graph.error_next("media_list", code=2, message="Service unavailable", is_transient=True)
    graph.error_next("media_list", code=2, message="Service unavailable", is_transient=True)
    graph.error_next("media_list", code=2, message="Service unavailable", is_transient=True)
    log = CheckpointLog()
    with pytest.raises(TransientPublishError, match="the next try asks again"):
        publisher(graph, client).publish(post(media), log)
    assert log.resume["publish_requested"] == log.resume["container_id"]
    result = publisher(graph, client).publish(post(media, resume=log.resume), CheckpointLog())
    assert result.external_id == graph.published[0].media_id


def test_a_container_found_published_marks_the_post_as_out(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    first = CheckpointLog()
    publisher(graph, client).publish(post(media), first)
    # An attempt that recorded only its container (the rest was lost) finds it published.
    log = CheckpointLog()
    resume = {"container_id": first.resume["container_id"]}
    result = publisher(graph, client).publish(post(media, resume=resume), log)
    assert result.external_id == graph.published[0].media_id
    assert log.calls[0] == ("publish_requested", first.resume["container_id"])
    assert graph.calls("publish") == 1


def test_verify_reports_what_the_container_says(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.drop_after_publish(lands_after=0.3)
    graph.throttle_next(1, route="publish", skip=1, regain_minutes=0)
    log = CheckpointLog()
    with pytest.raises(GraphThrottled):
        publisher(graph, client).publish(post(media), log)
    before = publisher(graph, client).verify(post(media, resume=log.resume))
    assert (before.published, before.media_id) == (False, None)
    assert "FINISHED" in before.detail
    time.sleep(0.4)
    after = publisher(graph, client).verify(post(media, resume=log.resume))
    assert (after.published, after.media_id) == (True, graph.published[0].media_id)
    assert publisher(graph, client).media_exists(graph.published[0].media_id)
    assert not publisher(graph, client).media_exists("17999999999999999")
    nothing = publisher(graph, client).verify(post(media))
    assert nothing.published is None


def test_a_rate_limit_without_a_graph_answer_is_throttling(
    media: FakeMediaHost, client: httpx.Client
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, text="slow down", headers={"Retry-After": "42"})

    with (
        httpx.Client(transport=httpx.MockTransport(answer)) as limited,
        pytest.raises(Throttled) as caught,
    ):
        InstagramPublisher(
            client=limited,
            base_url="https://graph.instagram.com",
            ig_user_id="17841400000000001",
            access_token=TOKEN,
            poll=PollPolicy(first_delay=0.01),
            clock=lambda: datetime.now(UTC),
        ).publish(post(media), CheckpointLog())
    assert caught.value.retry_after == 42
