"""A message is sent once: through a real HTTP receiver and a real SMTP server, refusals are
tried again, lost answers never are, and a dead worker's send is settled by the next scan."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import ChannelKind, Notification, NotificationStatus, NotifyChannel
from pipeline.db import session_scope
from pipeline.notify.channels import webhook_format
from pipeline.notify.compose import new_notification
from pipeline.notify.deliver import Delivery, deliver, make_sender
from pipeline.notify.message import Outgoing
from pipeline.notify.webhook import DISCORD_LIMIT, build_webhook_payload
from pipeline.settings import Settings
from tests.conftest import NOW
from tests.fakes.notify_receiver import NotifyReceiver
from tests.fakes.smtp_server import SmtpServer
from tests.notify_kit import add_channel, scan

N = NotificationStatus
KEY = "a-signing-key-for-tests-0123456789"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def queue_message(
    factory: sessionmaker[Session], channel_id: int, cause: str = "post_failed"
) -> str:
    line = {"summary": "post #7 @mia failed: boom", "hint": "see `ryla post show 7`"}
    with session_scope(factory) as s:
        note = new_notification(channel_id, cause, NOW, "a post failed", [line])
        s.add(note)
    return note.id


def send(
    factory: sessionmaker[Session],
    settings: Settings,
    note_id: str,
    client: httpx.Client,
    *,
    at=NOW,
    smtp_timeout: float = 5.0,
) -> Delivery:  # type: ignore[no-untyped-def]
    sender = make_sender(client, smtp_timeout=smtp_timeout)
    return deliver(factory, note_id, settings=settings, send=sender, clock=lambda: at)


def row(factory: sessionmaker[Session], note_id: str) -> Notification:
    with factory() as s:
        return s.get_one(Notification, note_id)


def test_a_webhook_message_goes_once_signed_with_its_id_as_the_key(
    settings: Settings, factory: sessionmaker[Session], client: httpx.Client
) -> None:
    with NotifyReceiver(signing_key=KEY) as receiver:
        channel = add_channel(factory, settings, secrets={"url": receiver.url, "signing_key": KEY})
        note_id = queue_message(factory, channel)
        first = send(factory, settings, note_id, client)
        again = send(factory, settings, note_id, client)  # a duplicate delivery of the task
    assert first.status is N.SENT and again.status is None
    (got,) = receiver.received
    assert got.key == note_id and got.signed
    assert got.body["event"] == "ryla.notification" and got.body["cause"] == "post_failed"
    assert got.body["items"][0]["hint"] == "see `ryla post show 7`"
    assert row(factory, note_id).sent_at == NOW


def test_slack_and_discord_get_the_shape_they_accept() -> None:
    message = Outgoing(
        "id-1", "post_failed", "RYLA: a post failed", "• <b> & @everyone " + "x" * 3000, [],
        NOW, NOW, "ops", ChannelKind.WEBHOOK, {}, {},
    )  # fmt: skip
    assert webhook_format({}, "hooks.slack.com") == "slack"
    assert webhook_format({}, "discord.com") == "discord"
    assert webhook_format({"format": "slack"}, "n8n.example.com") == "slack"
    assert webhook_format({}, "n8n.example.com") == "json"
    slack = build_webhook_payload(message, "slack")
    assert set(slack) == {"text"} and "&lt;b&gt; &amp;" in slack["text"]
    discord = build_webhook_payload(message, "discord")
    assert len(discord["content"]) == DISCORD_LIMIT and discord["allowed_mentions"] == {"parse": []}


def test_a_refused_send_waits_and_is_tried_again(
    settings: Settings, factory: sessionmaker[Session], client: httpx.Client
) -> None:
    with NotifyReceiver(statuses=[503]) as receiver:
        channel = add_channel(factory, settings, url=receiver.url)
        note_id = queue_message(factory, channel)
        with session_scope(factory) as s:  # handed to the io queue by a scan
            s.execute(update(Notification).values(dispatched_at=NOW))
        refused = send(factory, settings, note_id, client)
        waiting = row(factory, note_id)
        too_soon = send(factory, settings, note_id, client)
        later = send(factory, settings, note_id, client, at=waiting.next_attempt_at)
    assert refused.status is N.PENDING and "answered HTTP 503; will try again" in refused.detail
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > NOW
    assert waiting.send_started_at is None  # it surely did not arrive
    assert waiting.dispatched_at is None  # the first scan after the wait hands it out again
    assert too_soon.status is None and later.status is N.SENT
    assert len(receiver.received) == 1


def test_a_removed_hook_fails_without_showing_its_secret_path(
    settings: Settings, factory: sessionmaker[Session], client: httpx.Client
) -> None:
    with NotifyReceiver(statuses=[404]) as receiver:
        channel = add_channel(factory, settings, url=receiver.url)
        note_id = queue_message(factory, channel)
        result = send(factory, settings, note_id, client)
    assert result.status is N.FAILED and "answered HTTP 404" in result.detail
    assert "secret-path" not in (row(factory, note_id).error or "")


def test_no_connection_is_tried_again_later(
    settings: Settings, factory: sessionmaker[Session], client: httpx.Client
) -> None:
    channel = add_channel(factory, settings, url="http://127.0.0.1:9/hook")  # nothing listens
    note_id = queue_message(factory, channel)
    result = send(factory, settings, note_id, client)
    assert result.status is N.PENDING and "no connection" in result.detail


def test_a_lost_answer_is_never_sent_again(
    settings: Settings, factory: sessionmaker[Session], client: httpx.Client
) -> None:
    with NotifyReceiver(statuses=[0]) as receiver:
        channel = add_channel(factory, settings, url=receiver.url)
        note_id = queue_message(factory, channel)
        lost = send(factory, settings, note_id, client)
        report = scan(factory, settings, NOW + timedelta(hours=2))
        again = send(factory, settings, note_id, client, at=NOW + timedelta(hours=2))
    assert lost.status is N.UNKNOWN and "may have arrived" in lost.detail
    assert note_id not in report.due and again.status is None
    assert receiver.keys() == [note_id]


def test_a_dead_workers_send_is_returned_before_the_call_and_unknown_after_it(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    channel = add_channel(factory, settings)
    before, during = (
        queue_message(factory, channel, "post_failed"),
        queue_message(factory, channel, "post_missed"),
    )
    expired = {"status": N.SENDING, "lease_owner": "send-dead", "lease_expires_at": NOW}
    with session_scope(factory) as s:
        s.execute(update(Notification).where(Notification.id == before).values(expired))
        s.execute(
            update(Notification)
            .where(Notification.id == during)
            .values({**expired, "send_started_at": NOW})
        )
    report = scan(factory, settings, NOW + timedelta(seconds=1))
    assert (report.returned, report.unknown) == (1, 1)
    assert row(factory, before).status is N.PENDING and before in report.due
    assert row(factory, during).status is N.UNKNOWN and during not in report.due


def test_an_email_goes_once_with_the_message_id_and_what_to_do(
    settings: Settings, factory: sessionmaker[Session], client: httpx.Client
) -> None:
    with SmtpServer() as server:
        channel = email_channel(factory, settings, server.port)
        note_id = queue_message(factory, channel)
        first = send(factory, settings, note_id, client)
        again = send(factory, settings, note_id, client)
    assert first.status is N.SENT and again.status is None
    (mail,) = server.received
    assert mail["Subject"] == "RYLA: a post failed" and mail["To"] == "ops@example.com"
    assert mail["X-Ryla-Notification"] == note_id and note_id in mail["Message-ID"]
    assert "see `ryla post show 7`" in mail.get_payload()


def email_channel(
    factory: sessionmaker[Session], settings: Settings, port: int, name: str = "mail"
) -> int:
    config = {
        "to": ["ops@example.com"],
        "sender": "ryla@example.com",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "security": "none",
    }
    return add_channel(factory, settings, name, kind=ChannelKind.EMAIL, config=config, secrets={})


@pytest.mark.parametrize(
    ("answer", "status"), [("451 4.3.0 try later", N.PENDING), ("554 5.7.1 no", N.FAILED)]
)
def test_smtp_refusals_retry_when_temporary_and_fail_when_permanent(
    settings: Settings,
    factory: sessionmaker[Session],
    client: httpx.Client,
    answer: str,
    status: NotificationStatus,
) -> None:
    with SmtpServer(refuse_next=[answer]) as server:
        note_id = queue_message(factory, email_channel(factory, settings, server.port))
        result = send(factory, settings, note_id, client)
    assert result.status is status and server.received == []


def test_an_smtp_answer_that_never_comes_is_unknown_and_not_sent_again(
    settings: Settings, factory: sessionmaker[Session], client: httpx.Client
) -> None:
    with SmtpServer(hold=threading.Event()) as server:
        note_id = queue_message(factory, email_channel(factory, settings, server.port))
        result = send(factory, settings, note_id, client, smtp_timeout=1.0)
        again = send(factory, settings, note_id, client, at=NOW + timedelta(hours=1))
    assert result.status is N.UNKNOWN and again.status is None
    assert len(server.received) == 1


def test_channel_secrets_are_stored_encrypted(
    settings: Settings, factory: sessionmaker[Session]
) -> None:
    add_channel(factory, settings, url="https://hooks.slack.com/services/T1/B2/very-secret-path")
    with factory() as s:
        channel = s.scalars(select(NotifyChannel)).one()
    assert "very-secret-path" not in (channel.secrets_encrypted or "")
    assert "very-secret-path" not in str(channel.config)
    assert channel.config["host"] == "hooks.slack.com"
