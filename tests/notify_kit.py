"""Helpers for notification tests: a channel, a post moved to a state, a scan at a given time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import ChannelKind, Notification, PostEvent, PostStatus
from pipeline.db import session_scope
from pipeline.notify.channels import ChannelIn, create_channel
from pipeline.notify.scan import ScanReport, run_scan
from pipeline.settings import Settings
from pipeline.steps.moves import move

__all__ = ["add_channel", "messages", "move_post", "scan"]


def add_channel(
    factory: sessionmaker[Session],
    settings: Settings,
    name: str = "ops",
    *,
    url: str = "http://127.0.0.1:9/hook",
    kind: ChannelKind = ChannelKind.WEBHOOK,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    now: datetime | None = None,
    **kwargs: Any,
) -> int:
    data = ChannelIn(
        name,
        kind,
        config if config is not None else {"format": "json"},
        secrets if secrets is not None else {"url": url},
        **kwargs,
    )
    with session_scope(factory) as session:
        created = now or datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
        return create_channel(session=session, settings=settings, data=data, now=created).id


def move_post(
    factory: sessionmaker[Session],
    post_id: int,
    to: PostStatus,
    *,
    via: tuple[PostStatus, ...] = (),
    at: datetime | None = None,
    detail: str = "",
) -> None:
    """Walk a post through legal moves to ``to``; ``at`` dates the audit rows."""
    with session_scope(factory) as session:
        current = PostStatus.PLANNED
        for step in (*via, to):
            assert move(session, post_id, expected=current, to=step, actor="test", detail=detail)
            current = step
        if at is not None:
            session.execute(update(PostEvent).where(PostEvent.post_id == post_id).values(at=at))


def scan(factory: sessionmaker[Session], settings: Settings, now: datetime) -> ScanReport:
    with session_scope(factory) as session:
        return run_scan(session, settings=settings, now=now)


def messages(factory: sessionmaker[Session], cause: str | None = None) -> list[Notification]:
    with factory() as session:
        stmt = select(Notification).order_by(Notification.created_at, Notification.window_start)
        if cause:
            stmt = stmt.where(Notification.cause == cause)
        return list(session.scalars(stmt))
