"""The profile grid as Instagram will show it: published and coming posts, newest first.

Cancelled, failed and missed posts will never be on the profile, so they are not in the grid.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from models import Post, PostStatus
from pipeline.browse.posts import PostRow, post_rows, rows_query
from pipeline.errors import InputError
from pipeline.planning.influencers import get_influencer

__all__ = ["ON_PROFILE", "feed_grid"]

S = PostStatus
# What is or will be on the profile; unknown may be out there already.
ON_PROFILE = [
    S.PLANNED,
    S.GENERATING,
    S.GENERATED,
    S.RENDERING,
    S.READY,
    S.AWAITING_APPROVAL,
    S.APPROVED,
    S.PUBLISHING,
    S.PUBLISHED,
    S.UNKNOWN,
]


def feed_grid(session: Session, *, handle: str, limit: int = 60) -> list[PostRow]:
    """The newest ``limit`` tiles of the profile, top-left first, carousels included once."""
    if not 3 <= limit <= 300:
        raise InputError(f"limit {limit} is out of range: show 3 to 300 tiles")
    influencer = get_influencer(session, handle)
    stmt = (
        rows_query()
        .where(Post.influencer_id == influencer.id, Post.status.in_(ON_PROFILE))
        .order_by(Post.publish_at.desc(), Post.id.desc())
        .limit(limit)
    )
    return post_rows(session, stmt)
