"""The state of things at a glance: posts by state, how many need a person, what comes next,
and which generator drew the latest images (what the workers chose, not only what was asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Asset, AssetKind, Post, PostStatus, PublishTarget
from pipeline.browse.posts import NEEDS_PERSON, PostRow, post_rows, rows_query
from pipeline.planning.influencers import get_influencer

__all__ = ["GeneratorSeen", "Overview", "overview"]

S = PostStatus
_COMING = [S.PLANNED, S.GENERATING, S.GENERATED, S.RENDERING, S.READY, S.APPROVED, S.PUBLISHING]


@dataclass(frozen=True)
class GeneratorSeen:
    name: str
    preview: bool
    at: datetime


@dataclass(frozen=True)
class Overview:
    by_state: dict[str, int]
    needs_person: int
    next_up: list[PostRow]
    generator: GeneratorSeen | None
    targets_needing_reauth: int


def overview(
    session: Session, *, now: datetime, handle: str | None = None, upcoming: int = 5
) -> Overview:
    scope = []
    if handle:
        scope.append(Post.influencer_id == get_influencer(session, handle).id)
    counts = session.execute(
        select(Post.status, func.count()).where(*scope).group_by(Post.status)
    ).all()
    by_state = {str(status): count for status, count in counts}
    coming = (
        rows_query()
        .where(*scope, Post.publish_at >= now, Post.status.in_(_COMING))
        .order_by(Post.publish_at, Post.id)
        .limit(upcoming)
    )
    reauth = select(func.count()).select_from(PublishTarget).where(PublishTarget.needs_reauth)
    return Overview(
        by_state=by_state,
        needs_person=sum(by_state.get(str(s), 0) for s in NEEDS_PERSON),
        next_up=post_rows(session, coming),
        generator=_latest_generator(session),
        targets_needing_reauth=int(session.scalar(reauth) or 0),
    )


def _latest_generator(session: Session) -> GeneratorSeen | None:
    latest = session.execute(
        select(Asset.meta, Asset.created_at)
        .where(Asset.kind == AssetKind.RAW)
        .order_by(Asset.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    meta, at = latest
    return GeneratorSeen(str(meta.get("generator", "?")), bool(meta.get("preview")), at)
