"""``ryla notify``, ``ryla workers`` and ``ryla status`` as a person uses them: channels added,
listed, tested and removed; bad input one line, exit 2, nothing written; who is alive."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from models import Notification, NotificationStatus, NotifyChannel, utcnow
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.observe.workers import Beat, record_heartbeat
from pipeline.settings import get_settings
from tests.fakes.notify_receiver import NotifyReceiver
from tests.fakes.smtp_server import SmtpServer
from tests.unit.conftest import Invoke
from tests.unit.test_cli import add_mia


def channels(tmp_path: Path) -> int:
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'ryla.db'}")
    with engine.connect() as conn:
        found = conn.scalar(select(func.count()).select_from(NotifyChannel)) or 0
    engine.dispose()
    return found


def test_a_webhook_channel_is_added_listed_tested_and_removed(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    with NotifyReceiver() as receiver:
        monkeypatch.setenv("RYLA_NOTIFY_WEBHOOK_URL", receiver.url)
        added = ryla("notify", "add", "ops", "--webhook", "--format", "slack", "--window", "30")
        # The generated signing key is shown once: the receiver checks signatures with it.
        receiver.signing_key = added.output.split("(shown once): ")[1].strip()
        listed = ryla("notify", "list")
        tested = ryla("notify", "test", "ops")
    assert added.exit_code == 0 and "channel ops (webhook) added" in added.output
    assert "ops: webhook to 127.0.0.1 (slack)" in listed.output
    assert "one message per cause every 30 min" in listed.output
    assert "secret-path" not in listed.output and receiver.signing_key not in listed.output
    assert tested.exit_code == 0 and "ops: sent" in tested.output
    (got,) = receiver.received
    assert "test from ryla" in got.body["text"] and got.signed
    assert ryla("notify", "remove", "ops").exit_code == 0
    assert "no channels" in ryla("notify", "list").output


def test_an_email_channel_test_goes_through_smtp(ryla: Invoke) -> None:
    with SmtpServer() as server:
        args = [
            "--email",
            "ops@example.com",
            "--from",
            "ryla@example.com",
            "--smtp-host",
            "127.0.0.1",
        ]
        port = ["--smtp-port", str(server.port), "--security", "none", "--digest", "08:00"]
        assert (
            ryla("notify", "add", "mail", *args, *port, "--timezone", "Europe/Berlin").exit_code
            == 0
        )
        tested = ryla("notify", "test", "mail")
    assert tested.exit_code == 0 and "SMTP 127.0.0.1" in tested.output
    assert [m["Subject"] for m in server.received] == ["RYLA: test notification"]
    assert "digest at 08:00 Europe/Berlin" in ryla("notify", "list").output


def test_a_failed_test_exits_1_and_is_not_sent_later_by_a_worker(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RYLA_NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/nothing-listens")
    assert ryla("notify", "add", "ops", "--webhook").exit_code == 0
    tested = ryla("notify", "test", "ops")
    assert tested.exit_code == 1 and "ops: failed" in tested.output
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'ryla.db'}")
    with engine.connect() as conn:
        assert conn.scalar(select(Notification.status)) == NotificationStatus.FAILED
    engine.dispose()


BAD = [
    (["notify", "add", "x"], "give either --webhook or --email"),
    (
        [
            "notify",
            "add",
            "x",
            "--email",
            "not-an-address",
            "--from",
            "r@example.com",
            "--smtp-host",
            "h",
        ],
        "is not an e-mail address",
    ),
    (
        ["notify", "add", "x", "--email", "a@example.com", "--from", "r@example.com"],
        "needs --smtp-host",
    ),
    (["notify", "add", "x", "--webhook", "--cause", "everything"], "unknown cause 'everything'"),
    (["notify", "add", "x", "--webhook", "--digest", "25:00"], "must be a local time HH:MM"),
    (["notify", "add", "x", "--webhook", "--digest-only"], "--digest-only needs --digest"),
    (
        ["notify", "add", "x", "--webhook", "--digest", "08:00", "--timezone", "Mars/Base"],
        "Mars/Base",
    ),
    (["notify", "test", "nobody"], "unknown channel 'nobody'"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_channel_input_is_one_line_and_writes_nothing(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], message: str
) -> None:
    monkeypatch.setenv("RYLA_NOTIFY_WEBHOOK_URL", "https://hooks.example.com/x")
    result = ryla(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert channels(tmp_path) == 0


def test_a_webhook_without_a_url_or_terminal_says_which_variable_to_set(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RYLA_NOTIFY_WEBHOOK_URL", raising=False)
    result = ryla("notify", "add", "ops", "--webhook")
    assert result.exit_code == 2 and "set RYLA_NOTIFY_WEBHOOK_URL" in result.output
    assert channels(tmp_path) == 0


def test_a_second_channel_of_one_name_is_refused(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYLA_NOTIFY_WEBHOOK_URL", "https://hooks.example.com/x")
    assert ryla("notify", "add", "ops", "--webhook").exit_code == 0
    again = ryla("notify", "add", "ops", "--webhook")
    assert again.exit_code == 2 and "already exists" in again.output


def beat_now(name: str, queues: str, seconds_ago: float) -> None:
    engine = make_engine(get_settings())
    with session_scope(make_session_factory(engine)) as s:
        beat = Beat(name, "worker" if queues else "beat", queues, 7, "ready")
        record_heartbeat(s, beat, now=utcnow() - timedelta(seconds=seconds_ago))
    engine.dispose()


def test_workers_check_passes_while_the_heartbeat_is_fresh(ryla: Invoke) -> None:
    beat_now("cpu@box", "cpu", 5)
    beat_now("gpu@box", "gpu", 3600)
    assert ryla("workers", "--check", "cpu@box").exit_code == 0
    stale = ryla("workers", "--check", "gpu@box")
    assert stale.exit_code == 1 and "not alive (last seen 60 min ago)" in stale.output
    assert ryla("workers", "--check", "nobody@box").exit_code == 1
    listed = ryla("workers").output
    assert "cpu@box" in listed and "alive" in listed and "GONE" in listed


def test_status_shows_workers_what_needs_a_person_and_cost(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_mia(ryla)
    beat_now("gpu@box", "gpu", 2)
    assert ryla("post", "add", "mia", "--at", "+2h").exit_code == 0
    out = ryla("status").output
    assert "workers seen:" in out and "gpu@box" in out and "ready" in out
    assert "needs a person: nothing" in out
    assert "cost not recorded (set RYLA_GPU_COST_PER_HOUR)" in out


def test_post_history_is_shown_in_the_influencers_zone_with_its_label(ryla: Invoke) -> None:
    add_mia(ryla)
    assert ryla("post", "add", "mia", "--at", "+2h").exit_code == 0
    assert ryla("post", "cancel", "1").exit_code == 0
    history = ryla("post", "show", "1").output.splitlines()[-1]
    assert any(zone in history for zone in (" CET ", " CEST ")), history
