"""Heartbeats: each worker and beat writes its row every few seconds; readers ask who is alive.

A row is written with one UPDATE, or an INSERT the first time: names are unique per process, so
two writers never race for one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import WorkerHeartbeat

__all__ = [
    "Beat",
    "WorkerSeen",
    "gpu_last_seen",
    "prune_heartbeats",
    "record_heartbeat",
    "workers_seen",
]

STALE_AFTER = 3  # heartbeat intervals without a beat before a process counts as gone


@dataclass(frozen=True)
class Beat:
    """What one process says about itself."""

    name: str  # "gpu0@host", "beat@host"
    role: str  # worker | beat
    queues: str
    pid: int
    state: str = ""  # "starting", "ready", "active", "standby", "stopped"


def record_heartbeat(session: Session, beat: Beat, *, now: datetime) -> None:
    stopped = now if beat.state == "stopped" else None
    values = {
        "role": beat.role,
        "queues": beat.queues,
        "state": beat.state,
        "pid": beat.pid,
        "last_seen_at": now,
        "stopped_at": stopped,
    }
    found = session.execute(
        update(WorkerHeartbeat).where(WorkerHeartbeat.name == beat.name).values(values)
    )
    if found.rowcount:  # type: ignore[attr-defined]
        return
    try:
        with session.begin_nested():
            session.add(WorkerHeartbeat(name=beat.name, started_at=now, **values))
    except IntegrityError:  # pragma: no cover - a restart under the same name, same instant
        pass


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    role: str
    queues: str
    state: str
    last_seen_at: datetime
    started_at: datetime
    alive: bool  # seen within a few heartbeat intervals and not stopped

    def age(self, now: datetime) -> float:
        return max(0.0, (now - self.last_seen_at).total_seconds())


def workers_seen(session: Session, *, now: datetime, heartbeat_seconds: float) -> list[WorkerSeen]:
    """Every process with a heartbeat row, beats first, then workers by name."""
    fresh = now - timedelta(seconds=heartbeat_seconds * STALE_AFTER)
    rows = session.scalars(
        select(WorkerHeartbeat).order_by(WorkerHeartbeat.role, WorkerHeartbeat.name)
    )
    return [
        WorkerSeen(
            row.name,
            row.role,
            row.queues,
            row.state,
            row.last_seen_at,
            row.started_at,
            row.stopped_at is None and row.last_seen_at >= fresh,
        )
        for row in rows
    ]


def gpu_last_seen(session: Session) -> datetime | None:
    """The last heartbeat of any process that consumes the gpu queue (running or stopped)."""
    rows = session.execute(
        select(WorkerHeartbeat.queues, WorkerHeartbeat.last_seen_at).where(
            WorkerHeartbeat.role == "worker"
        )
    )
    # A stopped worker's last heartbeat is its stop: it was seen until then.
    return max((last for queues, last in rows if "gpu" in queues.split(",")), default=None)


def prune_heartbeats(session: Session, *, now: datetime, keep: timedelta) -> int:
    """Forget processes not seen for ``keep``: containers come and go under new names."""
    result = session.execute(
        delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at < now - keep)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
