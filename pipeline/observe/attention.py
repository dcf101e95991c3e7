"""What needs a person now, and what the GPU has cost: read by ``ryla status`` and the digest.

Computed from the rows as they are, so it is right even when no scan has run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Asset, AssetKind, Notification, NotificationStatus, Post, PostStatus
from pipeline.notify.causes import condition_findings

__all__ = ["Cost", "NeedsPerson", "gpu_cost", "needs_a_person"]

S = PostStatus
RECENT = timedelta(days=7)  # failed posts older than this are history, not a to-do
_SHOWN = 5  # post ids listed per line


@dataclass(frozen=True)
class NeedsPerson:
    what: str  # one line: what waits
    hint: str  # one line: what to do


def _post_ids(session: Session, status: PostStatus, since: datetime | None) -> list[int]:
    stmt = select(Post.id).where(Post.status == status).order_by(Post.publish_at)
    if since is not None:
        stmt = stmt.where(Post.publish_at >= since)
    return list(session.scalars(stmt))


def _ids(ids: list[int]) -> str:
    shown = ", ".join(f"#{i}" for i in ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def _post_lines(session: Session, now: datetime) -> list[NeedsPerson]:
    lines = []
    if unknown := _post_ids(session, S.UNKNOWN, None):
        lines.append(
            NeedsPerson(
                f"{len(unknown)} post(s) may or may not be out: {_ids(unknown)}",
                "`ryla post resolve ID` asks Instagram and records what it says",
            )
        )
    if held := _post_ids(session, S.PREVIEW_ONLY, None):
        lines.append(
            NeedsPerson(
                f"{len(held)} post(s) hold placeholder images, kept from Instagram and webhooks: "
                f"{_ids(held)}",
                "`ryla post generate ID` where Z-Image runs, or a target added with "
                "--accept-previews",
            )
        )
    if failed := _post_ids(session, S.FAILED, now - RECENT):
        lines.append(
            NeedsPerson(
                f"{len(failed)} post(s) failed in the last 7 days or ahead: {_ids(failed)}",
                "`ryla post show ID` says why; retry with `ryla post generate ID` or cancel",
            )
        )
    if waiting := _post_ids(session, S.AWAITING_APPROVAL, None):
        lines.append(
            NeedsPerson(
                f"{len(waiting)} post(s) await approval: {_ids(waiting)}",
                "look at them (`ryla post show ID`), then `ryla post approve ID`",
            )
        )
    return lines


def needs_a_person(session: Session, *, now: datetime, silence: timedelta) -> list[NeedsPerson]:
    """Every open to-do, most urgent first; empty when nothing waits for a person."""
    lines = _post_lines(session, now)
    lines += [
        NeedsPerson(f.summary, f.hint)
        for f in condition_findings(session, now=now, silence=silence)
    ]
    lost = session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.status.in_([NotificationStatus.UNKNOWN, NotificationStatus.FAILED]),
            Notification.created_at >= now - RECENT,
        )
    )
    if lost:
        lines.append(
            NeedsPerson(
                f"{lost} notification(s) in the last 7 days may not have arrived",
                "`ryla notify list` shows which; `ryla notify test NAME` checks a channel",
            )
        )
    return lines


@dataclass(frozen=True)
class Cost:
    images: int
    gpu_seconds: float
    cost: float  # in the unit of RYLA_GPU_COST_PER_HOUR


def gpu_cost(session: Session, *, since: datetime | None = None) -> Cost:
    """Images generated and what their GPU time cost, as recorded on each raw image."""
    stmt = select(
        func.count(),
        func.coalesce(func.sum(Asset.meta["duration_s"].as_float()), 0.0),
        func.coalesce(func.sum(Asset.meta["cost"].as_float()), 0.0),
    ).where(Asset.kind == AssetKind.RAW)
    if since is not None:
        stmt = stmt.where(Asset.created_at >= since)
    count, seconds, cost = session.execute(stmt).one()
    return Cost(int(count), float(seconds), float(cost))
