"""The Instagram publisher against the fake Graph API: shapes, polling, resume, Meta's limits.

Faults (500s, throttling, lost answers, failed containers) live in test_instagram_faults.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pipeline.errors import PermanentPublishError
from pipeline.publishers.base import PublishRequest
from pipeline.publishers.graph_api import (
    GraphApi,
    PollPolicy,
    quota_frees_at,
    refresh_long_lived_token,
)
from pipeline.publishers.instagram import InstagramPublisher
from tests.fakes.graph_api import FakeGraphApi, Published
from tests.fakes.media_server import FakeMediaHost
from tests.fakes.publish_kit import CheckpointLog, make_jpeg, media_item, publish_request

FAST = PollPolicy(first_delay=0.01, factor=1.5, max_delay=0.05)


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi(processing_seconds=0.03) as fake:
        yield fake


def publisher(graph: FakeGraphApi, client: httpx.Client, **options: Any) -> InstagramPublisher:
    return InstagramPublisher.from_target(
        config={"base_url": graph.base_url, "api_version": "v24.0", "ig_user_id": graph.ig_user_id},
        secrets={"access_token": next(iter(graph.tokens))},
        client=client,
        clock=lambda: datetime.fromtimestamp(graph.clock(), UTC),
        poll=dataclasses.replace(FAST, **options),
    )


def square_post(media: FakeMediaHost, **kwargs: object) -> PublishRequest:
    data = make_jpeg(64, 64)
    return publish_request(media_item(media.put("posts/7/square.jpg", data), data), **kwargs)  # type: ignore[arg-type]


def test_single_image_is_published_once_with_ai_label_alt_text_and_caption(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    log = CheckpointLog()
    result = publisher(graph, client).publish(square_post(media), log)

    [post] = graph.published
    container = graph.containers[post.container_id]
    assert result.external_id == post.media_id
    assert result.permalink and result.permalink.startswith("https://www.instagram.com/p/")
    assert container.fields["is_ai_generated"] == "true"
    assert container.fields["alt_text"] == "A woman on a tram at sunrise"
    assert post.caption == "Morning light in Lisbon #travel"
    assert media.downloads == ["posts/7/square.jpg"]  # Instagram fetched the signed URL itself
    assert log.calls[0] == ("container_id", post.container_id)  # recorded before any publish
    assert log.keys() == ["container_id", "publish_requested", "external_id"]


def test_container_is_polled_until_finished_before_media_publish(
    media: FakeMediaHost, client: httpx.Client
) -> None:
    with FakeGraphApi(processing_seconds=0.15) as graph:
        publisher(graph, client).publish(square_post(media), CheckpointLog())
        assert graph.calls("status") >= 3
        assert graph.calls("publish") == 1
        assert len(graph.published) == 1


def test_story_is_a_stories_container_without_caption(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    data = make_jpeg(90, 160)
    item = media_item(media.put("posts/7/story.jpg", data), data, fmt="story")
    publisher(graph, client).publish(publish_request(item, media_type="story"), CheckpointLog())

    [post] = graph.published
    fields = graph.containers[post.container_id].fields
    assert fields["media_type"] == "STORIES"
    assert "caption" not in fields


def test_carousel_makes_item_containers_then_a_labelled_parent_with_children(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    items = []
    for index in range(3):
        data = make_jpeg(64, 80, colour=("red", "green", "blue")[index])
        items.append(media_item(media.put(f"posts/7/{index}.jpg", data), data))
    log = CheckpointLog()
    publisher(graph, client).publish(publish_request(*items, media_type="carousel"), log)

    [post] = graph.published
    parent = graph.containers[post.container_id]
    children = parent.fields["children"].split(",")
    assert parent.kind == "CAROUSEL" and parent.fields["caption"] == post.caption
    assert [graph.containers[c].kind for c in children] == ["CAROUSEL_ITEM"] * 3
    assert all(graph.containers[c].fields["is_carousel_item"] == "true" for c in children)
    # The AI label sits on the carousel container only (Meta's changelog, 2026-06-22).
    assert parent.fields["is_ai_generated"] == "true"
    assert not any("is_ai_generated" in graph.containers[c].fields for c in children)
    assert len(post.image_urls) == 3
    assert log.resume["container_id"] == parent.id  # the parent, never a child


@pytest.mark.parametrize(
    ("width", "height", "kind", "subcode"),
    [(64, 200, "JPEG", "2207009"), (64, 64, "PNG", "2207005")],
    ids=["aspect-ratio", "not-jpeg"],
)
def test_media_instagram_refuses_fails_with_metas_message(
    graph: FakeGraphApi,
    media: FakeMediaHost,
    client: httpx.Client,
    width: int,
    height: int,
    kind: str,
    subcode: str,
) -> None:
    data = make_jpeg(width, height, kind=kind)
    request = publish_request(media_item(media.put("posts/7/bad.jpg", data), data))
    with pytest.raises(PermanentPublishError, match=subcode):
        publisher(graph, client).publish(request, CheckpointLog())
    assert graph.published == []


def test_image_over_the_size_limit_fails_with_2207004(
    media: FakeMediaHost, client: httpx.Client
) -> None:
    with FakeGraphApi(max_image_bytes=400) as graph:  # the 8 MiB rule, scaled down
        with pytest.raises(PermanentPublishError, match=r"image size is too large.*2207004"):
            publisher(graph, client).publish(square_post(media), CheckpointLog())
        assert graph.published == []


@pytest.mark.parametrize(
    "caption", ["x" * 2201, " ".join(f"#tag{i}" for i in range(31))], ids=["length", "hashtags"]
)
def test_caption_over_instagram_limits_fails_with_2207010(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client, caption: str
) -> None:
    with pytest.raises(PermanentPublishError, match="2207010"):
        publisher(graph, client).publish(square_post(media, caption=caption), CheckpointLog())


def test_media_without_a_public_url_is_refused_before_any_call(
    graph: FakeGraphApi, client: httpx.Client
) -> None:
    data = make_jpeg(64, 64)
    item = media_item("", data)
    with pytest.raises(PermanentPublishError, match="RYLA_PUBLIC_BASE_URL"):
        publisher(graph, client).publish(publish_request(item), CheckpointLog())
    assert graph.requests == []


def test_resume_with_a_published_container_succeeds_without_media_publish(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    first = CheckpointLog()
    publisher(graph, client).publish(square_post(media), first)
    resume = {"container_id": first.resume["container_id"]}  # the media id was never recorded

    result = publisher(graph, client).publish(square_post(media, resume=resume), CheckpointLog())

    assert graph.calls("publish") == 1 and graph.calls("create") == 1
    assert result.external_id == graph.published[0].media_id  # found by caption


def test_resume_with_a_finished_container_publishes_it_without_a_new_one(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.error_next("publish", code=2, message="Service temporarily unavailable", status=400)
    first = CheckpointLog()
    with pytest.raises(Exception, match="Service temporarily unavailable"):
        publisher(graph, client, publish_tries=1).publish(square_post(media), first)

    publisher(graph, client).publish(square_post(media, resume=first.resume), CheckpointLog())

    assert graph.calls("create") == 1
    assert graph.published_containers() == [first.resume["container_id"]]


def test_resume_with_an_in_progress_container_keeps_polling_it(
    media: FakeMediaHost, client: httpx.Client
) -> None:
    with FakeGraphApi(processing_seconds=0.3) as graph:
        first = CheckpointLog()
        with pytest.raises(Exception, match="still IN_PROGRESS"):
            publisher(graph, client, status_checks=2).publish(square_post(media), first)
        time.sleep(0.1)
        publisher(graph, client).publish(square_post(media, resume=first.resume), CheckpointLog())
        assert graph.calls("create") == 1 and len(graph.published) == 1


def test_resume_with_a_recorded_media_id_only_fetches_the_permalink(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    first = CheckpointLog()
    publisher(graph, client).publish(square_post(media), first)
    calls = len(graph.requests)

    result = publisher(graph, client).publish(
        square_post(media, resume=first.resume), CheckpointLog()
    )

    assert result.external_id == first.resume["external_id"]
    assert [r.route for r in graph.requests[calls:]] == ["status"]  # the permalink read


def test_content_publishing_limit_reads_the_quota_instead_of_assuming_it(
    media: FakeMediaHost, client: httpx.Client
) -> None:
    with FakeGraphApi(quota_total=7, quota_duration=3600) as graph:
        ig = publisher(graph, client)
        ig.publish(square_post(media), CheckpointLog())
        quota = ig.content_publishing_limit()
    assert (quota.usage, quota.total, quota.duration_seconds, quota.remaining) == (1, 7, 3600, 6)


def test_quota_frees_when_the_oldest_post_leaves_the_window(client: httpx.Client) -> None:
    now = 1_800_000_000.0
    with FakeGraphApi(quota_total=2, clock=lambda: now) as graph:
        graph.published += [_fake_post(now - 20_000), _fake_post(now - 5_000)]
        api = GraphApi(
            client=client,
            base_url=graph.base_url,
            api_version="v24.0",
            access_token=next(iter(graph.tokens)),
            policy=FAST,
        )
        frees = quota_frees_at(api, graph.ig_user_id, now=datetime.fromtimestamp(now, UTC))
    exact = datetime.fromtimestamp(now - 20_000 + 86_400, UTC)
    assert exact <= frees <= exact + timedelta(seconds=90)  # late, never early


def test_long_lived_token_is_refreshed(graph: FakeGraphApi, client: httpx.Client) -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    token = next(iter(graph.tokens))
    fresh = refresh_long_lived_token(
        client=client, base_url=graph.base_url, access_token=token, now=now
    )
    assert fresh.access_token != token and fresh.access_token in graph.tokens
    assert fresh.expires_at == now + timedelta(days=60)


def _fake_post(at: float) -> Published:
    return Published("1", "2", "IMAGE", "", ("",), at)
