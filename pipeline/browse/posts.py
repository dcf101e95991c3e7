"""The post list (filters by state, influencer, time and "needs a person"; cursor paging) and one
post in full: images, caption, generator and seed, its history of moves and publish attempts.

A cursor is the last row's (publish time, id): a page stays right while posts are added.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select, text, tuple_
from sqlalchemy.orm import Session

from models import (
    Asset,
    AssetKind,
    ContentCalendar,
    Influencer,
    Post,
    PostEvent,
    PostStatus,
    PublishAttempt,
    PublishTarget,
)
from models.post import NEEDS_PERSON_SQL
from pipeline.errors import InputError, NotFound
from pipeline.planning.influencers import get_influencer
from pipeline.steps.previews import image_provenance

__all__ = [
    "MAX_PAGE",
    "NEEDS_PERSON",
    "ROW_COLUMNS",
    "AttemptRow",
    "EventRow",
    "ImageRef",
    "PostDetail",
    "PostFilter",
    "PostPage",
    "PostRow",
    "decode_cursor",
    "encode_cursor",
    "images_by_post",
    "images_of",
    "list_posts",
    "needs_person",
    "post_detail",
    "post_rows",
    "rows_query",
]

S = PostStatus
NEEDS_PERSON = (S.AWAITING_APPROVAL, S.FAILED, S.UNKNOWN, S.MISSED)
MAX_PAGE = 200


@dataclass(frozen=True)
class ImageRef:
    asset_id: int
    kind: str
    format: str
    key: str  # the storage key: the studio signs a URL for it
    sha256: str
    width: int
    height: int
    content_type: str


@dataclass(frozen=True)
class PostRow:
    id: int
    handle: str
    status: PostStatus
    publish_at: datetime
    local_time: str
    scene: str
    environment: str
    media_type: str
    image_count: int
    caption: str  # the rendered caption, else the text it will be made from
    last_error: str | None
    generation: int = 0  # which images are current (a regeneration adds one)
    thumbnail: ImageRef | None = None


@dataclass(frozen=True)
class PostFilter:
    statuses: Sequence[PostStatus] = ()
    handle: str | None = None
    start: datetime | None = None  # publish time from (inclusive)
    end: datetime | None = None  # publish time until (exclusive)
    needs_person: bool = False


@dataclass(frozen=True)
class PostPage:
    rows: list[PostRow]
    next_cursor: str | None


def needs_person() -> ColumnElement[bool]:
    """The partial index's own predicate, as a constant the planner can match whatever the
    statement's parameters are (a prepared ``status IN ($1 …)`` alone would not use it)."""
    return and_(text(NEEDS_PERSON_SQL))


def encode_cursor(publish_at: datetime, post_id: int) -> str:
    raw = f"{int(publish_at.timestamp() * 1_000_000)}:{post_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, post_id = (int(part) for part in raw.split(":"))
        if not 0 < post_id < 2**31:  # an id no row has: the database's integer would overflow
            raise ValueError(post_id)
        return datetime.fromtimestamp(micros / 1_000_000, UTC), post_id
    except (ValueError, binascii.Error, OverflowError, OSError):
        raise InputError(
            f"cursor {cursor[:40]!r} is not one this list gave: start again without it"
        ) from None


def _conditions(session: Session, filters: PostFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.handle:
        conditions.append(Post.influencer_id == get_influencer(session, filters.handle).id)
    statuses = list(filters.statuses)
    if filters.needs_person:
        statuses = [s for s in statuses if s in NEEDS_PERSON] if statuses else list(NEEDS_PERSON)
        if not statuses:
            raise InputError("no state given needs a person: leave out state or needs_person")
    if statuses:
        conditions.append(Post.status.in_(statuses))
    if filters.needs_person:
        conditions.append(needs_person())
    for instant in (filters.start, filters.end):
        if instant is None:
            continue
        if instant.tzinfo is None:
            raise InputError(f"time {instant.isoformat()} has no zone: add an offset such as Z")
        try:
            instant.astimezone(UTC)  # how the database will compare it
        except OverflowError:
            raise InputError(
                f"time {instant.isoformat()} is out of range: give one within years 1-9999 UTC"
            ) from None
    if filters.start is not None:
        conditions.append(Post.publish_at >= filters.start)
    if filters.end is not None:
        conditions.append(Post.publish_at < filters.end)
    return conditions


def list_posts(
    session: Session,
    *,
    filters: PostFilter,
    cursor: str | None = None,
    limit: int = 50,
    newest_first: bool = False,
) -> PostPage:
    """One page of posts in publish order (or newest first), and the cursor of the next."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"limit {limit} is out of range: ask for 1 to {MAX_PAGE} rows")
    conditions = _conditions(session, filters)
    key = tuple_(Post.publish_at, Post.id)
    if cursor:
        after = decode_cursor(cursor)
        conditions.append(key < after if newest_first else key > after)
    order = (Post.publish_at.desc(), Post.id.desc()) if newest_first else (Post.publish_at, Post.id)
    stmt = rows_query().where(*conditions).order_by(*order).limit(limit + 1)
    rows = post_rows(session, stmt)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return PostPage(rows, encode_cursor(last.publish_at, last.id) if last else None)


# What a row of a list shows: plain columns, not ORM objects (a page of 50 reads about 3x faster).
ROW_COLUMNS = (
    Post.id,
    Influencer.handle,
    Post.status,
    Post.publish_at,
    Post.local_publish_time,
    Post.scene,
    Post.environment,
    Post.media_type,
    Post.image_count,
    Post.caption,
    Post.caption_text,
    Post.last_error,
    Post.generation,
)


def rows_query() -> Select:
    """The columns ``post_rows`` reads, joined to the influencer; add where/order/limit."""
    return select(*ROW_COLUMNS).join(Influencer, Influencer.id == Post.influencer_id)


def post_rows(session: Session, stmt: Select) -> list[PostRow]:
    """Rows for a ``rows_query()`` statement, each with its current thumbnail."""
    found = session.execute(stmt).all()
    thumbs = _thumbnails(session, {r.id: r.generation for r in found})
    return [_row(r, thumbs.get(r.id)) for r in found]


def _row(r: Any, thumbnail: ImageRef | None) -> PostRow:
    return PostRow(
        id=r.id,
        handle=r.handle,
        status=r.status,
        publish_at=r.publish_at,
        local_time=r.local_publish_time,
        scene=r.scene,
        environment=r.environment,
        media_type=str(r.media_type),
        image_count=r.image_count,
        caption=r.caption or r.caption_text,
        last_error=r.last_error,
        generation=r.generation,
        thumbnail=thumbnail,
    )


_ASSET_COLUMNS = (
    Asset.id,
    Asset.post_id,
    Asset.generation,
    Asset.kind,
    Asset.format,
    Asset.storage_key,
    Asset.sha256,
    Asset.width,
    Asset.height,
    Asset.content_type,
)


def _ref(asset: Any) -> ImageRef:
    return ImageRef(
        asset.id,
        str(asset.kind),
        asset.format,
        asset.storage_key,
        asset.sha256,
        asset.width,
        asset.height,
        asset.content_type,
    )


def _thumbnails(session: Session, generation: dict[int, int]) -> dict[int, ImageRef]:
    """The current generation's thumbnail of each post (by id → generation)."""
    found = images_by_post(session, generation, AssetKind.THUMBNAIL)
    return {post_id: refs[0] for post_id, refs in found.items()}


def images_by_post(
    session: Session, generation: dict[int, int], kind: AssetKind
) -> dict[int, list[ImageRef]]:
    """Each post's assets of one kind from its current generation (post id → generation), in
    format (and carousel) order: one query for a whole page."""
    if not generation:
        return {}
    stmt = (
        select(*_ASSET_COLUMNS)
        .where(Asset.post_id.in_(list(generation)), Asset.kind == kind)
        .order_by(Asset.post_id, Asset.format, Asset.id)
    )
    found: dict[int, list[ImageRef]] = {}
    for a in session.execute(stmt):
        if a.generation == generation[a.post_id]:
            found.setdefault(a.post_id, []).append(_ref(a))
    return found


def images_of(session: Session, post_id: int, generation: int, kind: AssetKind) -> list[ImageRef]:
    """One generation's assets of one kind, in format (and carousel) order."""
    stmt = (
        select(*_ASSET_COLUMNS)
        .where(Asset.post_id == post_id, Asset.generation == generation, Asset.kind == kind)
        .order_by(Asset.format, Asset.id)
    )
    return [_ref(a) for a in session.execute(stmt)]


@dataclass(frozen=True)
class EventRow:
    at: datetime
    from_status: str | None
    to_status: str
    actor: str
    detail: str


@dataclass(frozen=True)
class AttemptRow:
    id: str
    target_kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    external_id: str | None
    error: str | None


@dataclass(frozen=True)
class PostDetail:
    row: PostRow
    prompt: str
    negative_prompt: str
    seed: int | None
    alt_text: str
    hashtags: list[str]
    formats: list[str]
    generation: int
    generator: str | None  # what drew the current images (from the raw asset's record)
    calendar: str | None
    target: str | None
    external_id: str | None
    permalink: str | None
    published_at: datetime | None
    images: list[ImageRef] = field(default_factory=list)  # renditions, as they will go out
    events: list[EventRow] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)


def post_detail(session: Session, post_id: int) -> PostDetail:
    rows = post_rows(session, rows_query().where(Post.id == post_id))
    post = session.get(Post, post_id)
    if post is None or not rows:
        raise NotFound(f"unknown post {post_id}: list posts first", field="post_id")
    made = image_provenance(session, post)  # what made the current images, as publishing sees it
    return PostDetail(
        row=rows[0],
        prompt=post.prompt,
        negative_prompt=post.negative_prompt,
        seed=post.seed,
        alt_text=post.alt_text,
        hashtags=list(post.hashtags),
        formats=list(post.formats),
        generation=post.generation,
        generator=", ".join(made.generators) or None,
        calendar=_name_of(session, ContentCalendar, post.calendar_id),
        target=_name_of(session, PublishTarget, post.publish_target_id),
        external_id=post.external_id,
        permalink=post.permalink,
        published_at=post.published_at,
        images=images_of(session, post.id, post.generation, AssetKind.RENDITION),
        events=_events(session, post.id),
        attempts=_attempts(session, post.id),
    )


def _name_of(
    session: Session, table: type[ContentCalendar] | type[PublishTarget], row_id: int | None
) -> str | None:
    if row_id is None:
        return None
    return session.scalar(select(table.name).where(table.id == row_id))


def _events(session: Session, post_id: int) -> list[EventRow]:
    stmt = select(PostEvent).where(PostEvent.post_id == post_id).order_by(PostEvent.id)
    return [
        EventRow(
            e.at, str(e.from_status) if e.from_status else None, str(e.to_status), e.actor, e.detail
        )
        for e in session.scalars(stmt)
    ]


def _attempts(session: Session, post_id: int) -> list[AttemptRow]:
    stmt = (
        select(PublishAttempt)
        .where(PublishAttempt.post_id == post_id)
        .order_by(PublishAttempt.started_at)
    )
    return [
        AttemptRow(
            a.id,
            str(a.target_kind),
            str(a.status),
            a.started_at,
            a.finished_at,
            a.external_id,
            a.error,
        )
        for a in session.scalars(stmt)
    ]
