"""Notifications through real workers, a real HTTP receiver and a real SMTP server: each cause
is told once per window, and a send is never repeated when the io worker dies in the middle.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import (
    ChannelKind,
    Notification,
    NotificationStatus,
    Post,
    PostStatus,
    PublishTarget,
    TargetKind,
    utcnow,
)
from pipeline.db import session_scope
from pipeline.steps.moves import move
from tests.conftest import add_influencer, add_post
from tests.fakes.notify_receiver import NotifyReceiver
from tests.fakes.smtp_server import SmtpServer
from tests.integration.conftest import Backend, Processes
from tests.notify_kit import add_channel

pytestmark = pytest.mark.integration
S = PostStatus
N = NotificationStatus
WINDOW = 20  # seconds: short, so one test sees several windows
KEY = secrets.token_urlsafe(24)
FAST = {
    "RYLA_NOTIFY_SCAN_SECONDS": "1",
    "RYLA_HEARTBEAT_SECONDS": "1",
    "RYLA_GPU_SILENCE_SECONDS": "5",
    "RYLA_NOTIFY_LEASE_SECONDS": "5",
}


def add_channels(backend: Backend, receiver: NotifyReceiver, smtp: SmtpServer) -> None:
    settings, now = backend.settings, utcnow()
    hook = {"url": receiver.url, "signing_key": KEY}
    add_channel(backend.factory, settings, "hook", secrets=hook, window_seconds=WINDOW, now=now)
    mail = {
        "to": ["ops@example.com"],
        "sender": "ryla@example.com",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "security": "none",
    }
    add_channel(
        backend.factory,
        settings,
        "mail",
        kind=ChannelKind.EMAIL,
        config=mail,
        secrets={},
        window_seconds=WINDOW,
        now=now,
    )


def wait_until(
    check: Callable[[], bool], what: str, procs: Processes, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {timeout} s\n{procs.logs()}")


def hook_causes(receiver: NotifyReceiver) -> Counter[tuple[str, str]]:
    """(cause, window) of every webhook message received."""
    return Counter((r.body["cause"], r.body["window_start"]) for r in receiver.received)


def mail_causes(smtp: SmtpServer) -> Counter[tuple[str, str]]:
    return Counter((str(m["X-Ryla-Cause"]), str(m["X-Ryla-Window"])) for m in smtp.received)


def refs_told(receiver: NotifyReceiver, cause: str) -> list[str]:
    return [
        item["ref"]
        for r in receiver.received
        if r.body["cause"] == cause
        for item in r.body["items"]
    ]


def break_posts(s: Session, ids: list[int]) -> None:
    """A scene that no longer exists: generation fails for good (PromptError)."""
    s.execute(update(Post).where(Post.id.in_(ids)).values(scene="gone_scene"))


def flag_target(s: Session, influencer_id: int, name: str) -> None:
    """A target whose token was refused (what the token refresh records)."""
    target = PublishTarget(
        influencer_id=influencer_id, name=name, kind=TargetKind.INSTAGRAM, needs_reauth=True
    )
    s.add(target)


def window_of(receiver: NotifyReceiver, ref: str) -> datetime:
    (window,) = (
        r.body["window_start"]
        for r in receiver.received
        for item in r.body["items"]
        if item["ref"] == ref
    )
    return datetime.fromisoformat(window)


def test_each_cause_is_told_once_per_window_by_webhook_and_email(
    backend: Backend, processes: Processes
) -> None:
    backend.env |= FAST
    with NotifyReceiver(signing_key=KEY) as receiver, SmtpServer() as smtp:
        add_channels(backend, receiver, smtp)
        with session_scope(backend.factory) as s:
            influencer_id = add_influencer(s)
            now = utcnow()
            broken = [add_post(s, at=now + timedelta(seconds=i)) for i in range(2)]
            missed = add_post(s, at=now - timedelta(hours=2))
            unsure = add_post(s, at=now + timedelta(hours=1))
            break_posts(s, broken)
            flag_target(s, influencer_id, "mia-ig")
        # No GPU worker yet: posts wait to generate, and that is a cause of its own.
        processes.worker("cpu,io")
        processes.start("beat")
        first = {"gpu_missing", "target_reauth", "post_missed"}
        told = lambda: {c for c, _ in hook_causes(receiver)}  # noqa: E731
        wait_until(lambda: first <= told(), "the first causes", processes)
        processes.worker("gpu", concurrency=1)
        wait_until(lambda: "post_failed" in told(), "post_failed", processes)
        with session_scope(backend.factory) as s:
            # What the reconciler does to a publish it cannot verify.
            for src, to in pairwise(ORDER):
                assert move(s, unsure, expected=src, to=to, actor="test")
            late = add_post(s, at=utcnow())
            break_posts(s, [late])
        every = first | {"post_failed", "post_unknown"}
        wait_until(
            lambda: (
                every <= {c for c, _ in mail_causes(smtp)}
                and len(refs_told(receiver, "post_failed")) == 3
            ),
            "every cause by both channels",
            processes,
            timeout=150,
        )
        time.sleep(3)  # a few more scans: nothing more may arrive for what was told
    hooks, mails = hook_causes(receiver), mail_causes(smtp)
    assert max(hooks.values()) == 1 and max(mails.values()) == 1, (hooks, mails)
    assert {c for c, _ in hooks} == every == {c for c, _ in mails}
    assert sorted(refs_told(receiver, "post_failed")) == sorted(
        f"post:{i}" for i in (*broken, late)
    )
    assert refs_told(receiver, "post_missed") == [f"post:{missed}"]
    assert refs_told(receiver, "post_unknown") == [f"post:{unsure}"]
    # The late failure came while its window's message was out: it waited for the next one.
    assert window_of(receiver, f"post:{late}") > window_of(receiver, f"post:{broken[0]}")
    assert all(r.signed for r in receiver.received)
    with backend.factory() as s:
        assert set(s.scalars(select(Notification.status))) == {N.SENT}


ORDER = [S.PLANNED, S.GENERATING, S.GENERATED, S.RENDERING, S.READY, S.PUBLISHING, S.UNKNOWN]


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and its prefork children: nothing of it may finish a send."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    for victim in (*children, pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def statuses(backend: Backend) -> dict[str, NotificationStatus]:
    with backend.factory() as s:
        return dict(s.execute(select(Notification.id, Notification.status)).all())


def test_a_send_is_never_repeated_when_the_io_worker_dies_mid_send(
    backend: Backend, processes: Processes
) -> None:
    backend.env |= FAST
    hold_hook, hold_mail = threading.Event(), threading.Event()
    with NotifyReceiver(hold=hold_hook) as receiver, SmtpServer(hold=hold_mail) as smtp:
        add_channels(backend, receiver, smtp)
        with session_scope(backend.factory) as s:
            influencer_id = add_influencer(s)
            flag_target(s, influencer_id, "mia-ig")
        processes.worker("io")
        processes.start("beat")
        wait_until(
            lambda: receiver.arrived.is_set() and smtp.arrived.is_set(), "both sends", processes
        )
        worker, _ = processes.procs[0]
        kill_tree(worker.pid)  # both messages are in; neither answer ever reaches the worker
        worker.wait(10)
        hold_hook.set()
        hold_mail.set()
        first = set(statuses(backend))
        processes.worker("io")
        wait_until(
            lambda: set(statuses(backend).values()) == {N.UNKNOWN},
            "the dead sends settled as unknown",
            processes,
        )
        with session_scope(backend.factory) as s:  # something new to tell: sent as usual
            flag_target(s, influencer_id, "mia-ig-2")
        wait_until(lambda: len(statuses(backend)) == 4, "the next messages", processes, timeout=90)
        wait_until(
            lambda: sorted(statuses(backend).values()) == [N.SENT, N.SENT, N.UNKNOWN, N.UNKNOWN],
            "the next messages sent",
            processes,
        )
        time.sleep(3)  # more scans and a live worker: the unknown ones stay unsent
    hook_keys = receiver.keys()
    mail_ids = [str(m["X-Ryla-Notification"]) for m in smtp.received]
    assert len(hook_keys) == len(set(hook_keys)) == 2  # the held one and the next, once each
    assert len(mail_ids) == len(set(mail_ids)) == 2
    assert first <= {*hook_keys, *mail_ids}  # the held messages did arrive, once
