"""The periodic scan: record new alerts, open and resolve conditions, compose what is due,
return sends whose worker died, and list the messages to send now.

One transaction, serialised by a row lock on the scan's cursor: two scans never both record
the same alert or message (and the unique keys would refuse it if they tried).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Alert, NotifyChannel, PostEvent, ScanCursor
from pipeline.notify.causes import CONDITIONS, condition_findings, post_event_findings
from pipeline.notify.compose import compose_due
from pipeline.notify.deliver import due_notifications, reconcile_sends
from pipeline.observe.workers import prune_heartbeats
from pipeline.settings import Settings

__all__ = ["EVENTS_CURSOR", "SETTLE", "ScanReport", "run_scan"]

log = logging.getLogger(__name__)
EVENTS_CURSOR = "post_events"
# Event ids are handed out before their transaction commits: the cursor only passes events
# this old, and younger ones are read again next time (their alert keys make that harmless).
SETTLE = timedelta(seconds=60)
KEEP_HEARTBEATS = timedelta(days=7)


@dataclass
class ScanReport:
    alerts: int = 0
    resolved: int = 0
    composed: int = 0
    returned: int = 0  # sends whose worker died before the call: sent again
    unknown: int = 0  # sends whose worker died during the call: never sent again
    due: list[str] = field(default_factory=list)  # notification ids to send now


def _cursor(session: Session) -> ScanCursor:
    """The events cursor, row-locked. A first scan starts where the first channel was added:
    what happened before anyone asked to be told is history, not news."""
    stmt = select(ScanCursor).where(ScanCursor.name == EVENTS_CURSOR).with_for_update()
    cursor = session.scalars(stmt).first()
    if cursor is None:
        first_channel = session.scalar(select(func.min(NotifyChannel.created_at)))
        older = select(func.coalesce(func.max(PostEvent.id), 0))
        if first_channel is not None:
            older = older.where(PostEvent.at < first_channel)
        cursor = ScanCursor(name=EVENTS_CURSOR, position=session.scalar(older) or 0)
        session.add(cursor)
        session.flush()
    return cursor


EVENT_BATCH = 1000


def _event_alerts(session: Session, cursor: ScanCursor, now: datetime) -> int:
    found = post_event_findings(session, after_id=cursor.position, limit=EVENT_BATCH)
    keys = [f"event:{event_id}" for event_id, _ in found]
    known = set(session.scalars(select(Alert.key).where(Alert.key.in_(keys)))) if keys else set()
    for (_, finding), key in zip(found, keys, strict=True):
        if key not in known:
            session.add(
                Alert(
                    cause=finding.cause,
                    ref=finding.ref,
                    key=key,
                    summary=finding.summary,
                    hint=finding.hint,
                    occurred_at=now,
                    resolved_at=now,  # an event is over when it happens
                )
            )
    settled = session.scalar(
        select(func.max(PostEvent.id)).where(
            PostEvent.id > cursor.position, PostEvent.at < now - SETTLE
        )
    )
    if settled and len(found) == EVENT_BATCH:
        settled = min(settled, found[-1][0])  # a full batch: the rest are read next time
    if settled:
        cursor.position, cursor.updated_at = settled, now
    return len(keys) - len(known)


def _conditions(session: Session, settings: Settings, now: datetime) -> tuple[int, int]:
    silence = timedelta(seconds=settings.gpu_silence_seconds)
    current = {(f.cause, f.ref): f for f in condition_findings(session, now=now, silence=silence)}
    open_alerts = session.scalars(
        select(Alert).where(Alert.cause.in_(CONDITIONS), Alert.resolved_at.is_(None))
    ).all()
    opened = {(a.cause, a.ref) for a in open_alerts}
    resolved = 0
    for alert in open_alerts:
        if (alert.cause, alert.ref) not in current:
            alert.resolved_at = now
            resolved += 1
    new = [f for key, f in current.items() if key not in opened]
    for finding in new:
        session.add(
            Alert(
                cause=finding.cause,
                ref=finding.ref,
                key=f"{finding.cause}:{finding.ref}:{now.isoformat()}",
                summary=finding.summary,
                hint=finding.hint,
                occurred_at=now,
            )
        )
    return len(new), resolved


def run_scan(session: Session, *, settings: Settings, now: datetime) -> ScanReport:
    report = ScanReport()
    cursor = _cursor(session)
    report.alerts = _event_alerts(session, cursor, now)
    opened, report.resolved = _conditions(session, settings, now)
    report.alerts += opened
    session.flush()
    silence = timedelta(seconds=settings.gpu_silence_seconds)
    report.composed = compose_due(session, now=now, silence=silence)
    report.returned, report.unknown = reconcile_sends(session, now=now)
    session.flush()
    report.due = due_notifications(session, now=now)
    prune_heartbeats(session, now=now, keep=KEEP_HEARTBEATS)
    if report.alerts or report.composed or report.unknown:
        log.info(
            "notify scan: %d new alert(s), %d resolved, %d message(s) composed, %d send(s) "
            "of unknown outcome",
            report.alerts,
            report.resolved,
            report.composed,
            report.unknown,
        )
    return report
