"""Publishing to a signed webhook through real workers: once per post, whatever the receiver
answers (errors, lost answers), with one idempotency key per post's images.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from sqlalchemy import select

from models import Post, PostStatus, PublishAttempt, TargetKind, utcnow
from pipeline.db import session_scope
from pipeline.publishers.targets import TargetIn, create_target
from tests.conftest import add_influencer, add_post
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.conftest import Backend, Processes
from tests.integration.test_chain import wait_for
from tests.integration.test_publish_instagram import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["postgres_redis"], indirect=True)
def test_a_webhook_gets_each_post_once_despite_errors_and_lost_answers(
    backend: Backend, processes: Processes
) -> None:
    port = free_port()
    key = secrets.token_urlsafe(24)
    backend.env["RYLA_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    settings = backend.settings
    with WebhookReceiver(signing_key=key, fail_next=1, drop_next=1) as receiver:
        with session_scope(backend.factory) as s:
            add_influencer(s)
            create_target(
                now=utcnow(),
                session=s,
                settings=settings,
                handle="mia",
                data=TargetIn(
                    "mia-hook",
                    TargetKind.WEBHOOK,
                    {},
                    {"url": receiver.url, "signing_key": key},
                    accept_previews=True,  # the workers draw previews: a test target
                ),
            )
            ids = [add_post(s, at=utcnow(), caption_text=f"hook {i}") for i in range(2)]
        processes.start("serve", "--port", str(port), ready="serving media")
        processes.worker("gpu", concurrency=1)
        processes.worker("cpu,io")
        processes.start("beat")
        wait_for(backend, processes, ids, {PostStatus.PUBLISHED}, timeout=120)
    with backend.factory() as s:
        attempts = s.execute(
            select(PublishAttempt.id, Post.generation).join(Post, Post.id == PublishAttempt.post_id)
        ).all()
        external = s.scalars(select(Post.external_id).order_by(Post.id)).all()
    assert len(attempts) == 2  # one key per post: its first attempt's, for its images
    assert sorted(receiver.accepted) == sorted(f"{a}-g{generation}" for a, generation in attempts)
    assert receiver.deliveries >= 4 and receiver.bad_signatures == 0  # retries did happen
    assert all(external)
    payload = next(iter(receiver.accepted.values()))
    image = httpx.get(payload["images"][0]["url"], timeout=5)  # the signed URL serves the JPEG
    assert (image.status_code, image.headers["Content-Type"]) == (200, "image/jpeg")
    assert image.content[:2] == b"\xff\xd8"
    tampered = httpx.get(payload["images"][0]["url"].replace("sig=", "sig=x"), timeout=5)
    assert tampered.status_code == 403
