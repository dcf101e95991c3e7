"""Alerts become messages: one per channel, cause and window, and a daily digest.

The first alert of a cause in a window goes out at once; those that follow in the same window
wait and go out together at the start of the next one. The unique (channel, cause, window)
row makes that hold even when two scans race.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Alert, Notification, NotifyChannel, PostEvent, PostStatus
from pipeline.notify.causes import CAUSES, CONDITIONS
from pipeline.observe.attention import gpu_cost, needs_a_person
from pipeline.planning.times import zone

__all__ = ["MAX_ITEMS", "compose_due", "new_notification", "window_start"]

MAX_ITEMS = 20  # lines listed in one message; the rest are counted
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(now: datetime, seconds: int) -> datetime:
    """The window ``now`` falls in: windows are aligned to the epoch, so every scan agrees."""
    elapsed = (now - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=elapsed - elapsed % seconds)


def new_notification(
    channel_id: int,
    cause: str,
    start: datetime,
    title: str,
    lines: Sequence[dict[str, str]],
    *,
    alerts: tuple[int, int] | None = None,
) -> Notification:
    body = "\n".join(
        f"• {line['summary']}" + (f" — {line['hint']}" if line.get("hint") else "")
        for line in lines
    )
    return Notification(
        id=str(uuid.uuid4()),
        channel_id=channel_id,
        cause=cause,
        window_start=start,
        first_alert_id=alerts[0] if alerts else None,
        last_alert_id=alerts[1] if alerts else None,
        title=f"RYLA: {title}"[:300],
        body=body,
        items=list(lines),
    )


def _lines(alerts: Sequence[Alert]) -> list[dict[str, str]]:
    lines = []
    for alert in alerts[:MAX_ITEMS]:
        summary = alert.summary
        if alert.cause in CONDITIONS and alert.resolved_at is not None:
            summary += f" (resolved since {alert.resolved_at:%H:%M} UTC)"
        lines.append(
            {"cause": alert.cause, "ref": alert.ref, "summary": summary, "hint": alert.hint}
        )
    if len(alerts) > MAX_ITEMS:
        more = len(alerts) - MAX_ITEMS
        lines.append(
            {"cause": "more", "ref": "", "summary": f"and {more} more", "hint": "see `ryla status`"}
        )
    return lines


def _title(cause: str, count: int) -> str:
    one, many = CAUSES[cause]
    return one if count == 1 else many.format(n=count)


def _compose_immediate(session: Session, channel: NotifyChannel, now: datetime) -> int:
    covered = dict(
        session.execute(
            select(Notification.cause, func.max(Notification.last_alert_id))
            .where(Notification.channel_id == channel.id)
            .group_by(Notification.cause)
        ).all()
    )
    start = window_start(now, channel.window_seconds)
    made = 0
    for cause in channel.causes or list(CAUSES):
        after = max(covered.get(cause) or 0, channel.after_alert_id)
        alerts = session.scalars(
            select(Alert).where(Alert.cause == cause, Alert.id > after).order_by(Alert.id)
        ).all()
        if not alerts:
            continue
        taken = select(Notification.id).where(
            Notification.channel_id == channel.id,
            Notification.cause == cause,
            Notification.window_start == start,
        )
        if session.scalars(taken).first() is not None:
            continue  # this window's message is out: the rest wait for the next window
        title = _title(cause, len(alerts))
        span = (alerts[0].id, alerts[-1].id)
        session.add(new_notification(channel.id, cause, start, title, _lines(alerts), alerts=span))
        made += 1
    return made


def _digest_due(channel: NotifyChannel, now: datetime) -> datetime | None:
    """Today's digest instant (UTC) once it has passed, if the channel existed by then."""
    if channel.digest_at is None:
        return None
    tz = zone(channel.timezone)
    hour, minute = map(int, channel.digest_at.split(":"))
    local_day = now.astimezone(tz).date()
    due = datetime.combine(local_day, time(hour, minute), tzinfo=tz).astimezone(UTC)
    return due if due <= now and due >= channel.created_at else None


def _day_counts(session: Session, start: datetime, end: datetime) -> str:
    moves = dict(
        session.execute(
            select(PostEvent.to_status, func.count())
            .where(PostEvent.at >= start, PostEvent.at < end)
            .where(
                PostEvent.to_status.in_(
                    [PostStatus.PUBLISHED, PostStatus.FAILED, PostStatus.MISSED, PostStatus.UNKNOWN]
                )
            )
            .group_by(PostEvent.to_status)
        ).all()
    )
    counts = ", ".join(
        f"{moves.get(s, 0)} {s.value}"
        for s in (PostStatus.PUBLISHED, PostStatus.FAILED, PostStatus.MISSED, PostStatus.UNKNOWN)
    )
    cost = gpu_cost(session, since=start)
    return f"last 24 h: {counts}; {cost.images} image(s), GPU cost {cost.cost:.2f}"


def _compose_digest(
    session: Session, channel: NotifyChannel, now: datetime, silence: timedelta
) -> int:
    due = _digest_due(channel, now)
    if due is None:
        return 0
    taken = select(Notification.id).where(
        Notification.channel_id == channel.id,
        Notification.cause == "digest",
        Notification.window_start == due,
    )
    if session.scalars(taken).first() is not None:
        return 0
    after = session.scalar(
        select(func.max(Notification.last_alert_id)).where(
            Notification.channel_id == channel.id, Notification.cause == "digest"
        )
    )
    alerts = session.scalars(
        select(Alert)
        .where(Alert.id > max(after or 0, channel.after_alert_id))
        .where(Alert.cause.in_(channel.causes or list(CAUSES)))
        .order_by(Alert.id)
    ).all()
    lines = [
        {
            "cause": "summary",
            "ref": "",
            "summary": _day_counts(session, due - timedelta(days=1), due),
            "hint": "",
        }
    ]
    lines += [
        {"cause": "needs_person", "ref": "", "summary": item.what, "hint": item.hint}
        for item in needs_a_person(session, now=now, silence=silence)
    ]
    lines += _lines(alerts)
    local_day = due.astimezone(zone(channel.timezone)).date()
    span = (alerts[0].id, alerts[-1].id) if alerts else None
    title = f"daily digest for {local_day:%Y-%m-%d}"
    session.add(new_notification(channel.id, "digest", due, title, lines, alerts=span))
    return 1


def compose_due(session: Session, *, now: datetime, silence: timedelta) -> int:
    """Add every message that is due now, for every channel; returns how many."""
    made = 0
    for channel in session.scalars(select(NotifyChannel).order_by(NotifyChannel.id)).all():
        if channel.immediate:
            made += _compose_immediate(session, channel, now)
        made += _compose_digest(session, channel, now, silence)
    return made
