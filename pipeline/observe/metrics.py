"""The numbers read from the database when Prometheus scrapes: posts by state, images and GPU
cost, workers seen, notifications and open alerts. Kept apart from Prometheus itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Alert, Influencer, Notification, Post
from pipeline.observe.attention import Cost, gpu_cost
from pipeline.observe.workers import WorkerSeen, workers_seen

__all__ = ["DbSnapshot", "db_snapshot"]


@dataclass(frozen=True)
class DbSnapshot:
    posts: dict[tuple[str, str], int]  # (influencer, state) -> posts
    cost: Cost
    workers: list[WorkerSeen]
    notifications: dict[str, int]  # status -> messages
    open_alerts: dict[str, int]  # cause -> open conditions
    now: datetime


def db_snapshot(session: Session, *, now: datetime, heartbeat_seconds: float) -> DbSnapshot:
    posts = {
        (handle, status.value): count
        for handle, status, count in session.execute(
            select(Influencer.handle, Post.status, func.count())
            .join(Post, Post.influencer_id == Influencer.id)
            .group_by(Influencer.handle, Post.status)
        )
    }
    notifications = {
        status.value: count
        for status, count in session.execute(
            select(Notification.status, func.count()).group_by(Notification.status)
        )
    }
    open_alerts = dict(
        session.execute(
            select(Alert.cause, func.count())
            .where(Alert.resolved_at.is_(None))
            .group_by(Alert.cause)
        ).all()
    )
    return DbSnapshot(
        posts,
        gpu_cost(session),
        workers_seen(session, now=now, heartbeat_seconds=heartbeat_seconds),
        notifications,
        open_alerts,
        now,
    )
