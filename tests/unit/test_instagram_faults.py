"""Faults between us and Instagram, injected in the fake Graph API: each post goes out exactly
once, or the publish ends in the error class that tells the publish task what to do.
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pipeline.errors import (
    AuthExpired,
    OutcomeUnknown,
    PermanentPublishError,
    PublishError,
    QuotaExceeded,
    TransientPublishError,
)
from pipeline.publishers.base import PublishRequest
from pipeline.publishers.graph_api import PollPolicy
from pipeline.publishers.graph_errors import GraphThrottled, PublishingRestricted
from pipeline.publishers.instagram import InstagramPublisher
from tests.fakes.graph_api import FakeGraphApi, Published
from tests.fakes.media_server import FakeMediaHost
from tests.fakes.publish_kit import CheckpointLog, make_jpeg, media_item, publish_request

TOKEN = "IGAAfakeTOKEN0123456789secret"


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi(access_token=TOKEN, processing_seconds=0.02) as fake:
        yield fake


def publisher(
    graph: FakeGraphApi, client: httpx.Client, *, base_url: str = "", **poll: Any
) -> InstagramPublisher:
    return InstagramPublisher(
        client=client,
        base_url=base_url or graph.base_url,
        api_version="v24.0",
        ig_user_id=graph.ig_user_id,
        access_token=TOKEN,
        poll=PollPolicy(first_delay=0.01, factor=1.5, max_delay=0.05, **poll),
        clock=lambda: datetime.fromtimestamp(graph.clock(), UTC),
    )


def post(media: FakeMediaHost, *, resume: dict[str, str] | None = None) -> PublishRequest:
    data = make_jpeg(64, 64)
    return publish_request(media_item(media.put("posts/7/a.jpg", data), data), resume=resume)


def test_http_500s_on_container_creation_are_retried_and_the_post_goes_out_once(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.fail_next(2, route="create")
    publisher(graph, client).publish(post(media), CheckpointLog())
    assert graph.calls("create") == 3
    assert len(graph.published) == 1


def test_http_500s_that_outlast_the_retries_are_transient_and_a_later_try_publishes_once(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.fail_next(3, route="create")
    with pytest.raises(TransientPublishError):
        publisher(graph, client).publish(post(media), CheckpointLog())
    publisher(graph, client).publish(post(media), CheckpointLog())
    assert len(graph.published) == 1


def test_http_500_on_media_publish_asks_the_container_before_publishing_again(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.fail_next(1, route="publish")
    publisher(graph, client).publish(post(media), CheckpointLog())
    routes = [r.route for r in graph.requests]
    first = routes.index("publish")
    assert routes[first + 1] == "status"  # asked, found FINISHED, then published again
    assert graph.calls("publish") == 2
    assert len(graph.published) == 1


def test_publish_is_not_repeated_when_the_answer_is_lost(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.drop_after_publish()
    log = CheckpointLog()
    result = publisher(graph, client).publish(post(media), log)
    [published] = graph.published
    assert graph.calls("publish") == 1
    assert result.external_id == published.media_id  # found by caption, since the answer was lost
    assert log.resume["external_id"] == published.media_id


def test_slow_answer_to_media_publish_is_settled_by_the_container_and_published_once(
    graph: FakeGraphApi, media: FakeMediaHost
) -> None:
    graph.slow_next(1, seconds=0.8, route="publish")  # the call lands after the client gave up
    with httpx.Client(timeout=0.3) as impatient:
        publisher(graph, impatient).publish(post(media), CheckpointLog())
    time.sleep(0.8)  # let the slow publish arrive: the container is already PUBLISHED
    assert graph.calls("publish") == 2
    assert len(graph.published) == 1


def test_lost_answer_and_unreadable_container_is_outcome_unknown_never_a_repost(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.drop_after_publish()
    graph.fail_next(100, route="status", after="publish")
    log = CheckpointLog()
    with pytest.raises(OutcomeUnknown, match="may or may not be on Instagram"):
        publisher(graph, client, verify_checks=3).publish(post(media), log)
    assert graph.calls("publish") == 1 and len(graph.published) == 1

    graph.clear_faults()  # later, a person (or a resume) asks again: still one post
    publisher(graph, client).publish(post(media, resume=log.resume), CheckpointLog())
    assert graph.calls("publish") == 1 and len(graph.published) == 1


def test_throttling_on_publish_is_transient_with_a_wait_and_keeps_the_container(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.throttle_next(1, code=4, route="publish")
    log = CheckpointLog()
    with pytest.raises(GraphThrottled) as caught:
        publisher(graph, client).publish(post(media), log)
    assert caught.value.retry_after == 300  # Meta's estimated_time_to_regain_access, 5 min
    assert log.resume["publish_requested"] == ""  # a definite refusal: nothing went out

    publisher(graph, client).publish(post(media, resume=log.resume), CheckpointLog())
    assert graph.calls("create") == 1
    assert graph.published_containers() == [log.resume["container_id"]]


@pytest.mark.parametrize("code", [17, 32, 613])
def test_throttling_is_not_hammered(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client, code: int
) -> None:
    graph.throttle_next(5, code=code, route="create")
    with pytest.raises(GraphThrottled):
        publisher(graph, client).publish(post(media), CheckpointLog())
    assert graph.calls("create") == 1


def test_container_in_error_is_replaced_by_a_new_one(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.containers_end_in("ERROR", subcode=2207001)
    log = CheckpointLog()
    publisher(graph, client).publish(post(media), log)
    first, second = [value for key, value in log.calls if key == "container_id"]
    assert graph.containers[first].status()[0] == "ERROR"
    assert graph.published_containers() == [second]


def test_container_in_error_for_the_media_itself_fails_with_the_reason(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.containers_end_in("ERROR", subcode=2207009)
    with pytest.raises(PermanentPublishError, match="2207009"):
        publisher(graph, client).publish(post(media), CheckpointLog())
    assert graph.calls("create") == 1 and graph.published == []


def test_expired_container_is_replaced_when_no_publish_of_it_was_sent(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.containers_end_in("EXPIRED")
    log = CheckpointLog()
    publisher(graph, client).publish(post(media), log)
    assert graph.calls("create") == 2 and len(graph.published) == 1
    assert graph.published_containers() == [log.resume["container_id"]]


def test_expired_container_after_a_publish_that_may_have_arrived_is_unknown(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.throttle_next(1, route="publish")
    first = CheckpointLog()
    with pytest.raises(GraphThrottled):
        publisher(graph, client).publish(post(media), first)
    container_id = first.resume["container_id"]
    graph.expire(container_id)
    resume = {"container_id": container_id, "publish_requested": container_id}  # a crash mid-call

    with pytest.raises(OutcomeUnknown, match="EXPIRED"):
        publisher(graph, client).publish(post(media, resume=resume), CheckpointLog())
    assert graph.calls("create") == 1 and graph.published == []


def test_container_stuck_in_progress_gives_up_after_bounded_checks(
    media: FakeMediaHost, client: httpx.Client
) -> None:
    with FakeGraphApi(access_token=TOKEN, processing_seconds=60) as graph:
        with pytest.raises(TransientPublishError, match="IN_PROGRESS after 3 checks"):
            publisher(graph, client, status_checks=3).publish(post(media), CheckpointLog())
        assert graph.calls("status") == 3 and graph.calls("publish") == 0


def test_not_ready_2207027_keeps_polling_then_publishes_once(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.error_next("publish", code=9007, subcode=2207027, message="Media ID is not available")
    publisher(graph, client).publish(post(media), CheckpointLog())
    assert graph.calls("publish") == 2 and len(graph.published) == 1


@pytest.mark.parametrize("route", ["create", "publish"])
def test_expired_token_is_auth_expired(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client, route: str
) -> None:
    graph.error_next(route, code=190, subcode=463, message="Error validating access token")
    log = CheckpointLog()
    with pytest.raises(AuthExpired, match="re-authorise"):
        publisher(graph, client).publish(post(media), log)
    assert graph.published == []
    assert log.resume.get("publish_requested", "") == ""  # the container stays replaceable


def test_revoked_token_is_auth_expired_before_anything_is_made(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.revoke_tokens()
    with pytest.raises(AuthExpired):
        publisher(graph, client).publish(post(media), CheckpointLog())
    # The quota read is the first call, so the token is refused before anything is made.
    assert graph.containers == {} and graph.calls("create") == 0


def test_a_full_quota_defers_before_any_container_is_made(media: FakeMediaHost) -> None:
    now = time.time()
    with (
        FakeGraphApi(access_token=TOKEN, quota_total=1, clock=lambda: now) as graph,
        httpx.Client(timeout=2.0) as client,
    ):
        graph.published.append(Published("1", "2", "IMAGE", "", ("",), now - 1000))
        log = CheckpointLog()
        with pytest.raises(QuotaExceeded, match=r"quota used up \(1/1 in 24 h\)") as caught:
            publisher(graph, client).publish(post(media), log)
        assert graph.calls("create") == 0 and log.resume == {}
    frees = datetime.fromtimestamp(now - 1000 + 86_400, UTC)
    assert caught.value.retry_at is not None
    assert frees <= caught.value.retry_at <= frees + timedelta(seconds=90)


def test_suspected_spam_stops_with_no_retry(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.restrict_as_spam()
    with pytest.raises(PublishingRestricted, match="no automatic retry") as caught:
        publisher(graph, client).publish(post(media), CheckpointLog())
    assert isinstance(caught.value, PermanentPublishError)
    assert graph.calls("publish") == 1 and graph.published == []


def test_expired_media_url_is_one_instagram_cannot_fetch(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    data = make_jpeg(64, 64)
    item = media_item(media.put("posts/7/old.jpg", data, expires_in=-60), data)
    with pytest.raises(PermanentPublishError, match="could not be fetched"):
        publisher(graph, client).publish(publish_request(item), CheckpointLog())
    assert media.refused and media.downloads == []


def test_access_token_never_appears_in_errors_or_logs(
    graph: FakeGraphApi,
    media: FakeMediaHost,
    client: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    graph.error_next("create", code=100, message=f"Bad request ?access_token={TOKEN}&x=1")
    graph.error_next("status", code=190, message=f"token {TOKEN} is invalid")
    failures: list[PublishError] = []
    for _ in range(2):
        with pytest.raises(PublishError) as caught:
            publisher(graph, client).publish(post(media), CheckpointLog())
        failures.append(caught.value)
    with pytest.raises(TransientPublishError) as unreachable:
        publisher(graph, client, base_url=_closed_port_url()).publish(post(media), CheckpointLog())
    failures.append(unreachable.value)

    assert any(TOKEN in r.params.get("access_token", "") for r in graph.requests)  # it was sent
    assert "access_token" in caplog.text  # httpx logged the request URLs ...
    assert TOKEN not in caplog.text  # ... scrubbed
    for failure in failures:
        assert TOKEN not in "".join(traceback.format_exception(failure))


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_quota_filled_during_the_publish_keeps_the_container(
    graph: FakeGraphApi, media: FakeMediaHost, client: httpx.Client
) -> None:
    graph.error_next("publish", code=9, subcode=2207042, message="Max posts reached")
    log = CheckpointLog()
    with pytest.raises(QuotaExceeded, match="2207042") as caught:
        publisher(graph, client).publish(post(media), log)
    assert caught.value.retry_at is not None
    assert log.resume["container_id"]  # the deferred try publishes this one, not a new one
    assert graph.published == []
