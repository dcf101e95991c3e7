"""The webhook publisher: signed JSON, one idempotency key per post's images, statuses classified.

The receiver is an httpx.MockTransport: nothing leaves the process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest

from pipeline.errors import PermanentPublishError, TransientPublishError
from pipeline.publishers.base import PublishRequest
from pipeline.publishers.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    WebhookPublisher,
    sign_body,
    verify_signature,
)
from tests.fakes.publish_kit import CheckpointLog, make_jpeg, media_item, publish_request

KEY = "whsec-test-signing-key-0123456789"
HOOK = "https://hooks.example.test/catch/123/s3cr3t-path/"
NOW = 1_800_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]


def publisher(handler: Handler) -> WebhookPublisher:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return WebhookPublisher(client=client, url=HOOK, signing_key=KEY, clock=lambda: NOW)


def request() -> PublishRequest:
    data = make_jpeg(32, 32)
    return publish_request(media_item("https://media.example.test/media/posts/7/a.jpg?sig=x", data))


def test_post_is_sent_as_signed_json_with_its_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def receiver(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"ok": True})

    result = publisher(receiver).publish(request(), CheckpointLog())

    [sent] = seen
    body = json.loads(sent.content)
    assert sent.headers[IDEMPOTENCY_HEADER] == request().idempotency_key == request().attempt_id
    assert body["idempotency_key"] == request().attempt_id  # no delivery key given: the attempt's
    assert sent.headers["content-type"] == "application/json"
    assert verify_signature(sent.content, sent.headers[SIGNATURE_HEADER], KEY, now=NOW)
    assert body["post_id"] == 7 and body["handle"] == "lisbon.lena"
    assert body["caption"] == "Morning light in Lisbon #travel"
    assert body["alt_text"] == "A woman on a tram at sunrise"
    assert body["publish_at"] == "2026-11-26T09:00:00+00:00"
    assert body["images"][0]["url"].startswith("https://media.example.test/media/")
    assert body["is_ai_generated"] is True
    assert result.external_id == request().attempt_id


def test_receiver_id_and_link_become_the_result() -> None:
    answer = {"id": "n8n-exec-42", "permalink": "https://instagram.com/p/xyz/"}
    result = publisher(lambda _: httpx.Response(201, json=answer)).publish(
        request(), CheckpointLog()
    )
    assert (result.external_id, result.permalink) == ("n8n-exec-42", answer["permalink"])


def test_signature_header_format_is_documented_and_checked() -> None:
    body = b'{"post_id": 7}'
    header = sign_body(body, KEY, int(NOW))
    assert header.startswith(f"t={int(NOW)},v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(body, header, KEY, now=NOW + 10)
    assert not verify_signature(body + b" ", header, KEY, now=NOW)  # tampered body
    assert not verify_signature(body, header, "another-key", now=NOW)
    assert not verify_signature(body, header, KEY, now=NOW + 301)  # replayed later
    assert not verify_signature(body, "garbage", KEY, now=NOW)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_busy_or_failing_receivers_are_transient(status: int) -> None:
    with pytest.raises(TransientPublishError, match=f"HTTP {status}"):
        publisher(lambda _: httpx.Response(status)).publish(request(), CheckpointLog())


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 410, 422])
def test_refusals_are_permanent_with_the_receivers_reason(status: int) -> None:
    def receiver(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="caption field missing")

    with pytest.raises(PermanentPublishError, match="caption field missing"):
        publisher(receiver).publish(request(), CheckpointLog())


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.ReadError("reset")]
)
def test_network_failures_are_transient_and_keep_the_hook_path_secret(
    failure: httpx.HTTPError,
) -> None:
    def receiver(_: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(TransientPublishError, match=r"hooks\.example\.test") as caught:
        publisher(receiver).publish(request(), CheckpointLog())
    assert "s3cr3t-path" not in str(caught.value)


def test_a_retry_sends_the_same_idempotency_key() -> None:
    keys: list[str] = []

    def receiver(req: httpx.Request) -> httpx.Response:
        keys.append(req.headers[IDEMPOTENCY_HEADER])
        return httpx.Response(503 if len(keys) == 1 else 200)

    hook = publisher(receiver)
    with pytest.raises(TransientPublishError):
        hook.publish(request(), CheckpointLog())
    hook.publish(request(), CheckpointLog())
    assert keys == [request().attempt_id] * 2


def test_the_delivery_key_is_sent_when_the_request_has_one() -> None:
    keys: list[str] = []

    def receiver(req: httpx.Request) -> httpx.Response:
        keys.append(req.headers[IDEMPOTENCY_HEADER])
        return httpx.Response(200)

    publisher(receiver).publish(replace(request(), delivery_key="first-g2"), CheckpointLog())
    assert keys == ["first-g2"]


def test_images_without_public_urls_are_refused_before_sending() -> None:
    calls: list[httpx.Request] = []
    data = make_jpeg(32, 32)
    local_only = publish_request(media_item("", data))

    def receiver(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(200)

    with pytest.raises(PermanentPublishError, match="RYLA_PUBLIC_BASE_URL"):
        publisher(receiver).publish(local_only, CheckpointLog())
    assert calls == []


def test_from_target_takes_the_url_and_the_signing_key_from_secrets() -> None:
    with httpx.Client() as client:
        hook = WebhookPublisher.from_target(
            config={}, secrets={"url": HOOK, "signing_key": KEY}, client=client
        )
        assert hook.url == HOOK
        with pytest.raises(ValueError, match="signing_key"):
            WebhookPublisher.from_target(config={"url": HOOK}, secrets={}, client=client)
