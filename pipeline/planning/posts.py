"""One-off posts (and carousels) at a given time, checked before any row is added.

Calendar slots become posts through ``planning.expand``; this is the door for single posts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from models import (
    MediaType,
    Post,
)
from pipeline.errors import InputError
from pipeline.generators.prompts import ENVIRONMENTS, SCENES
from pipeline.planning.influencers import get_influencer, pick_character
from pipeline.planning.times import local_label, zone
from pipeline.validation import check_formats, check_presets

__all__ = ["PostIn", "create_post"]


@dataclass(frozen=True)
class PostIn:
    publish_at: datetime
    character: str | None = None
    scene: str = ""
    environment: str = ""
    outfit: str = ""
    prompt_extra: str = ""
    caption_text: str = ""
    hashtags: Sequence[str] = ()
    formats: Sequence[str] = ("feed_portrait",)
    lead_minutes: int = 0
    images: int = 1  # 2-10 make a carousel


def _media_type(data: PostIn) -> MediaType:
    if data.images == 1:
        return MediaType.STORY if data.formats[0] == "story" else MediaType.IMAGE
    if not 2 <= data.images <= 10:
        raise InputError(f"a carousel holds 2-10 images, got {data.images}: use --images 2..10")
    if data.formats[0] == "story":
        raise InputError("a carousel cannot be a story: give a feed format first (--format)")
    return MediaType.CAROUSEL


def create_post(*, session: Session, handle: str, data: PostIn) -> Post:
    influencer = get_influencer(session, handle)
    character = pick_character(session, influencer, data.character)
    if data.publish_at.tzinfo is None:
        raise InputError("publish time has no zone: give a local time with the influencer's zone")
    tz = zone(influencer.timezone)
    post = Post(
        influencer_id=influencer.id,
        character_id=character.id,
        publish_at=data.publish_at,
        generate_at=data.publish_at - timedelta(minutes=data.lead_minutes),
        local_publish_time=local_label(data.publish_at, tz),
        scene=check_presets("scene", [data.scene], SCENES)[0] if data.scene else "",
        environment=(
            check_presets("environment", [data.environment], ENVIRONMENTS)[0]
            if data.environment
            else ""
        ),
        outfit=data.outfit,
        prompt_extra=data.prompt_extra,
        caption_text=data.caption_text,
        hashtags=list(data.hashtags),
        formats=check_formats(data.formats),
        media_type=_media_type(data),
        image_count=data.images,
    )
    session.add(post)
    session.flush()
    return post
