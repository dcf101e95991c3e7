"""Posts, their state machine and the audit trail of every state move.

The allowed moves live here, beside the row they govern; ``pipeline.dispatch`` performs them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, JSONType, UTCDateTime, enum_column, utcnow


class PostStatus(StrEnum):
    PLANNED = "planned"
    GENERATING = "generating"
    GENERATED = "generated"
    RENDERING = "rendering"
    READY = "ready"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    UNKNOWN = "unknown"
    MISSED = "missed"
    CANCELLED = "cancelled"
    # Its images are the preview generator's placeholders and its target takes none: it waits
    # for real images (``ryla post generate``) or a target that accepts previews.
    PREVIEW_ONLY = "preview_only"


class MediaType(StrEnum):
    IMAGE = "image"
    CAROUSEL = "carousel"
    STORY = "story"


S = PostStatus
# Every legal move. Anything else is a bug and raises before touching the row.
TRANSITIONS: dict[PostStatus, frozenset[PostStatus]] = {
    S.PLANNED: frozenset({S.GENERATING, S.MISSED, S.CANCELLED}),
    S.GENERATING: frozenset({S.GENERATED, S.PLANNED, S.FAILED, S.CANCELLED}),
    S.GENERATED: frozenset({S.RENDERING, S.GENERATING, S.CANCELLED}),
    S.RENDERING: frozenset(
        {S.READY, S.AWAITING_APPROVAL, S.PREVIEW_ONLY, S.GENERATED, S.FAILED, S.CANCELLED}
    ),
    S.READY: frozenset({S.PUBLISHING, S.GENERATING, S.RENDERING, S.MISSED, S.CANCELLED}),
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.GENERATING, S.RENDERING, S.CANCELLED}),
    S.APPROVED: frozenset({S.PUBLISHING, S.MISSED, S.CANCELLED}),
    S.PUBLISHING: frozenset(
        {S.PUBLISHED, S.READY, S.APPROVED, S.FAILED, S.UNKNOWN, S.PREVIEW_ONLY}
    ),
    S.PUBLISHED: frozenset(),
    # PUBLISHED: a person finds on the account a post that failed while it may have been out.
    S.FAILED: frozenset({S.GENERATING, S.RENDERING, S.PUBLISHING, S.PUBLISHED, S.CANCELLED}),
    # A post that may be out is settled by a person, never published again as it is.
    S.UNKNOWN: frozenset({S.PUBLISHED, S.FAILED}),
    S.MISSED: frozenset({S.PLANNED, S.CANCELLED}),
    S.CANCELLED: frozenset(),
    S.PREVIEW_ONLY: frozenset({S.GENERATING, S.PUBLISHING, S.CANCELLED}),
}

# A worker holds a lease while in these; the reconciler returns an expired one to the left.
IN_PROGRESS: dict[PostStatus, PostStatus] = {
    S.GENERATING: S.PLANNED,
    S.RENDERING: S.GENERATED,
    S.PUBLISHING: S.READY,  # or APPROVED when the post was approved (see Post.approved_at)
}


# The posts that hold their instant: all but the terminal cancelled and published ones.
ONE_PER_INSTANT = "status NOT IN ('cancelled', 'published')"
# Posts a person must look at: awaiting approval, failed, unknown, missed.
NEEDS_PERSON_SQL = "status IN ('awaiting_approval', 'failed', 'unknown', 'missed')"


def can_move(src: PostStatus, dst: PostStatus) -> bool:
    return dst in TRANSITIONS[src]


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        Index("ix_posts_status_generate_at", "status", "generate_at"),
        Index("ix_posts_status_publish_at", "status", "publish_at"),
        Index("ix_posts_status_lease_expires_at", "status", "lease_expires_at"),
        # One post per influencer per instant, whatever rules or people add: a second rule
        # with the same slots adds nothing. Only terminal states leave the index, so no state
        # move can ever collide with it.
        Index(
            "uq_posts_influencer_instant",
            "influencer_id",
            "publish_at",
            unique=True,
            postgresql_where=text(ONE_PER_INSTANT),
            sqlite_where=text(ONE_PER_INSTANT),
        ),
        # The studio's lists and calendars: by time (cursor paging), per influencer by time.
        Index("ix_posts_publish_at_id", "publish_at", "id"),
        Index("ix_posts_influencer_id_publish_at_id", "influencer_id", "publish_at", "id"),
        # What needs a person (a small share of all posts), in time order: the approval queue.
        Index(
            "ix_posts_needs_person_publish_at_id",
            "publish_at",
            "id",
            "status",  # counts by state, and each state's range, read the index alone
            postgresql_where=text(NEEDS_PERSON_SQL),
            sqlite_where=text(NEEDS_PERSON_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    influencer_id: Mapped[int] = mapped_column(
        ForeignKey("influencers.id", ondelete="CASCADE"), index=True
    )
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("content_calendars.id", ondelete="SET NULL"), default=None, index=True
    )
    # "<calendar>:<rule>:<local date>T<local time>": expansion creates each slot once.
    slot_key: Mapped[str | None] = mapped_column(String(120), unique=True, default=None)
    publish_target_id: Mapped[int | None] = mapped_column(
        ForeignKey("publish_targets.id", ondelete="SET NULL"), default=None
    )

    status: Mapped[PostStatus] = mapped_column(enum_column(PostStatus), default=PostStatus.PLANNED)
    publish_at: Mapped[datetime] = mapped_column(UTCDateTime)
    generate_at: Mapped[datetime] = mapped_column(UTCDateTime)
    local_publish_time: Mapped[str] = mapped_column(String(40), default="")
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Back-off after a failed try: no claim before this instant.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    scene: Mapped[str] = mapped_column(String(64), default="")
    environment: Mapped[str] = mapped_column(String(64), default="")
    outfit: Mapped[str] = mapped_column(Text, default="")
    prompt_extra: Mapped[str] = mapped_column(Text, default="")
    prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    seed: Mapped[int | None] = mapped_column(Integer, default=None)
    caption_text: Mapped[str] = mapped_column(Text, default="")
    caption: Mapped[str] = mapped_column(Text, default="")
    alt_text: Mapped[str] = mapped_column(Text, default="")
    hashtags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    media_type: Mapped[MediaType] = mapped_column(enum_column(MediaType), default=MediaType.IMAGE)
    # Images generated for the post: 1, or 2-10 for a carousel (all at the first format's ratio).
    image_count: Mapped[int] = mapped_column(Integer, default=1)
    formats: Mapped[list[str]] = mapped_column(JSONType, default=lambda: ["feed_portrait"])

    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    permalink: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    events: Mapped[list[PostEvent]] = relationship(
        back_populates="post", order_by="PostEvent.id", passive_deletes=True
    )


class PostEvent(Base):
    """One row per state move: who moved the post, from what, to what, when and why."""

    __tablename__ = "post_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[PostStatus | None] = mapped_column(
        enum_column(PostStatus, name="from_status")
    )
    to_status: Mapped[PostStatus] = mapped_column(enum_column(PostStatus, name="to_status"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    detail: Mapped[str] = mapped_column(Text, default="")

    post: Mapped[Post] = relationship(back_populates="events")
