"""Turning the pipeline's read models (``pipeline.browse``) into API bodies, with signed links.

Integrations get absolute URLs under RYLA_PUBLIC_BASE_URL; pages get path-only ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from admin.studio.core import Studio
from admin.studio.media import media_link
from admin.studio.schemas import (
    AttemptOut,
    EventOut,
    ImageOut,
    PostDetailOut,
    PostOut,
    TriggerOut,
)
from models import Post
from pipeline.browse.posts import ImageRef, PostDetail, PostRow

__all__ = [
    "Links",
    "detail_out",
    "image_out",
    "post_out",
    "trigger_out",
]


@dataclass(frozen=True)
class Links:
    """Signs storage keys into URLs for one request."""

    sign: Callable[[str], str]

    @classmethod
    def of(cls, studio: Studio, *, absolute: bool) -> Links:
        now = studio.clock()

        def sign(key: str) -> str:
            return media_link(
                key,
                secret=studio.secret,
                base_url=studio.settings.public_base_url,
                now=now,
                ttl_hours=studio.settings.media_url_ttl_hours,
                absolute=absolute,
            )

        return cls(sign)


def image_out(ref: ImageRef, links: Links) -> ImageOut:
    return ImageOut(
        format=ref.format,
        width=ref.width,
        height=ref.height,
        sha256=ref.sha256,
        url=links.sign(ref.key),
    )


def post_out(row: PostRow, links: Links) -> PostOut:
    return PostOut(
        id=row.id,
        handle=row.handle,
        status=row.status,
        publish_at=row.publish_at,
        local_time=row.local_time,
        scene=row.scene,
        environment=row.environment,
        media_type=row.media_type,
        image_count=row.image_count,
        caption=row.caption,
        last_error=row.last_error,
        thumbnail_url=links.sign(row.thumbnail.key) if row.thumbnail else None,
    )


def detail_out(detail: PostDetail, links: Links) -> PostDetailOut:
    base = post_out(detail.row, links).model_dump()
    return PostDetailOut(
        **base,
        prompt=detail.prompt,
        negative_prompt=detail.negative_prompt,
        seed=detail.seed,
        alt_text=detail.alt_text,
        hashtags=detail.hashtags,
        formats=detail.formats,
        generation=detail.generation,
        generator=detail.generator,
        calendar=detail.calendar,
        target=detail.target,
        external_id=detail.external_id,
        permalink=detail.permalink,
        published_at=detail.published_at,
        images=[image_out(ref, links) for ref in detail.images],
        thumbnail=image_out(detail.row.thumbnail, links) if detail.row.thumbnail else None,
        events=[EventOut(**vars(e)) for e in detail.events],
        attempts=[AttemptOut(**vars(a)) for a in detail.attempts],
    )


def trigger_out(post: Post, queued: bool) -> TriggerOut:
    return TriggerOut(post_id=post.id, status=post.status, queued=queued)
