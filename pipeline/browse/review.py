"""The approval queue: posts that need a person (awaiting approval, failed, unknown, missed),
most urgent first, with their images and what can be done; and publish targets' health.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from models import AssetKind, Influencer, Post, PostStatus, PublishTarget, TargetKind
from pipeline.browse.posts import (
    ImageRef,
    PostRow,
    images_by_post,
    needs_person,
    post_rows,
    rows_query,
)
from pipeline.planning.influencers import get_influencer, handle_key

__all__ = ["ACTIONS", "QueueItem", "ReviewQueue", "TargetHealth", "review_queue", "target_health"]

S = PostStatus
# What a person can do from the queue, by state (the studio shows these as buttons and keys).
ACTIONS: dict[PostStatus, tuple[str, ...]] = {
    S.AWAITING_APPROVAL: ("approve", "reject", "regenerate", "caption"),
    S.FAILED: ("regenerate", "render", "publish", "cancel"),
    S.UNKNOWN: ("resolve_published", "resolve_not_published"),
    S.MISSED: ("cancel",),
}
_ORDER = (S.AWAITING_APPROVAL, S.UNKNOWN, S.FAILED, S.MISSED)


@dataclass(frozen=True)
class QueueItem:
    row: PostRow
    images: list[ImageRef]
    actions: tuple[str, ...]


@dataclass(frozen=True)
class TargetHealth:
    name: str
    kind: str
    handle: str | None
    needs_reauth: bool
    token_expires_at: str | None  # Instagram-login tokens: when the current one ends


@dataclass(frozen=True)
class ReviewQueue:
    items: list[QueueItem]
    counts: dict[str, int]  # posts per state that needs a person, beyond the page too
    targets: list[TargetHealth]  # targets that need a person


def review_queue(session: Session, *, handle: str | None = None, limit: int = 50) -> ReviewQueue:
    """Approvals first (they block a coming slot), then unknown, failed, missed; each oldest
    slot first. One index range per state, so a backlog of failures costs no more to show."""
    scope: list[ColumnElement[bool]] = [needs_person()]
    if handle:
        scope.append(Post.influencer_id == get_influencer(session, handle).id)
    rows: list[PostRow] = []
    for status in _ORDER:
        if len(rows) >= limit:
            break
        stmt = (
            rows_query()
            .where(*scope, Post.status == status)
            .order_by(Post.publish_at, Post.id)
            .limit(limit - len(rows))
        )
        rows += post_rows(session, stmt)
    images = images_by_post(session, {r.id: r.generation for r in rows}, AssetKind.RENDITION)
    items = [QueueItem(row, images.get(row.id, []), ACTIONS[row.status]) for row in rows]
    counts = session.execute(
        select(Post.status, func.count()).where(*scope).group_by(Post.status)
    ).all()
    targets = [t for t in target_health(session, handle=handle) if t.needs_reauth]
    return ReviewQueue(items, {str(k): v for k, v in counts}, targets)


def target_health(session: Session, *, handle: str | None = None) -> list[TargetHealth]:
    """Every publish target (or one influencer's) with what the database knows of its health."""
    stmt = (
        select(PublishTarget, Influencer.handle)
        .join(Influencer, Influencer.id == PublishTarget.influencer_id, isouter=True)
        .order_by(PublishTarget.name)
    )
    if handle:
        stmt = stmt.where(Influencer.handle == handle_key(handle))
    return [
        TargetHealth(
            target.name,
            str(target.kind),
            owner,
            target.needs_reauth,
            target.config.get("token_expires_at") if target.kind is TargetKind.INSTAGRAM else None,
        )
        for target, owner in session.execute(stmt)
    ]
