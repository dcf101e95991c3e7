"""Testing a publish target publishes nothing: the webhook gets a signed test event (and its
secret URL path stays out of the answer), a refusal or a dead host is reported, not raised."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session, sessionmaker

from models import PublishTarget, TargetKind, utcnow
from pipeline.db import session_scope
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
