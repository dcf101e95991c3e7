"""Testing a publish target publishes nothing: the webhook gets a signed test event (and its
secret URL path stays out of the answer), a refusal or a dead host is reported, not raised.
A target that could never publish is refused when it is added, naming the value."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import PublishTarget, TargetKind, utcnow
from pipeline.db import session_scope
from pipeline.errors import InputError
from pipeline.publishers.checks import TEST_EVENT, check_target
from pipeline.publishers.targets import TargetIn, create_target
from pipeline.settings import Settings
from tests.conftest import add_influencer
from tests.fakes.webhook_receiver import WebhookReceiver

KEY = "k" * 32


def webhook(factory: sessionmaker[Session], settings: Settings, url: str) -> PublishTarget:
    with session_scope(factory) as s:
        add_influencer(s)
        data = TargetIn("hook", TargetKind.WEBHOOK, {}, {"url": url, "signing_key": KEY})
        target = create_target(session=s, settings=settings, handle="mia", data=data, now=utcnow())
        s.flush()
        s.expunge(target)
    return target


def test_a_webhook_check_sends_one_signed_test_event(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with WebhookReceiver(signing_key=KEY) as receiver, httpx.Client() as client:
        target = webhook(factory, settings, receiver.url)
        result = check_target(target, settings=settings, client=client, now=utcnow())
    assert result.ok and "HTTP 200" in result.detail
    assert "/hooks/ryla" not in result.detail  # the path of a hook URL is its secret
    assert receiver.bad_signatures == 0
    assert [body["event"] for body in receiver.accepted.values()] == [TEST_EVENT]


def test_a_refused_or_unreachable_webhook_is_reported_not_raised(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with WebhookReceiver(signing_key="another-key" * 3) as receiver, httpx.Client() as client:
        target = webhook(factory, settings, receiver.url)
        refused = check_target(target, settings=settings, client=client, now=utcnow())
    assert not refused.ok and "HTTP 401" in refused.detail
    with httpx.Client() as client:
        gone = check_target(target, settings=settings, client=client, now=utcnow())
    assert not gone.ok and "no answer" in gone.detail


IG, HOOK, BOX = TargetKind.INSTAGRAM, TargetKind.WEBHOOK, TargetKind.OUTBOX
TOKEN = {"access_token": "IGQVJtoken"}
HOOK_URL = "https://hooks.example.com/x"


@pytest.mark.parametrize(
    ("kind", "config", "secrets", "needle"),
    [
        (HOOK, {}, {"url": HOOK_URL, "signing_key": "short"}, "signing key of 5 characters"),
        (HOOK, {}, {"url": "ftp://x", "signing_key": KEY}, "webhook URL must be an http(s)"),
        (IG, {"ig_user_id": "1784"}, {"access_token": "IGQ VJ"}, "holds spaces or line breaks"),
        (IG, {"ig_user_id": "mia"}, TOKEN, "--ig-user-id 'mia' must be the numeric"),
        (IG, {"ig_user_id": "1", "api_version": "24"}, TOKEN, "--api-version '24' is not a"),
        (IG, {"ig_user_id": "1", "api_version": "v24.0/x"}, TOKEN, "--api-version 'v24.0/x'"),
        (IG, {"ig_user_id": "1", "base_url": "http://graph.example"}, TOKEN, "must use https"),
        (BOX, {"path": "relative/box"}, {}, "--path 'relative/box' must be an absolute folder"),
    ],
)
def test_a_target_that_could_never_publish_is_refused_when_added(
    factory: sessionmaker[Session],
    settings: Settings,
    kind: TargetKind,
    config: dict[str, str],
    secrets: dict[str, str],
    needle: str,
) -> None:
    with session_scope(factory) as s:
        add_influencer(s)
    with pytest.raises(InputError) as refused, session_scope(factory) as s:
        data = TargetIn("t", kind, config, secrets)
        create_target(session=s, settings=settings, handle="mia", data=data, now=utcnow())
    assert needle in str(refused.value)
    for secret in secrets.values():
        assert len(secret) < 8 or secret not in str(refused.value)
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(PublishTarget)) == 0


def test_a_graph_api_version_like_v24_0_is_taken(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_scope(factory) as s:
        add_influencer(s)
        data = TargetIn("ig", IG, {"ig_user_id": "1784", "api_version": "v25.0"}, TOKEN)
        target = create_target(session=s, settings=settings, handle="mia", data=data, now=utcnow())
        assert target.config["api_version"] == "v25.0"
