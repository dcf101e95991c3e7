"""One-off posts (and carousels) at a given time, checked before any row is added.

Calendar slots become posts through ``planning.expand``; this is the door for single posts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Influencer, MediaType, Post, PostStatus
from pipeline.errors import InputError
from pipeline.generators.prompts import ENVIRONMENTS, SCENES
from pipeline.planning.caption_limits import check_post_caption
from pipeline.planning.frequency import check_day_has_room, daily_cap
from pipeline.planning.influencers import get_influencer, pick_character
from pipeline.planning.times import local_label, zone
from pipeline.settings import Settings
from pipeline.validation import (
    MAX_PROMPT_CHARS,
    check_formats,
    check_lead_minutes,
    check_presets,
    check_text,
    for_field,
    inserted_once,
)

__all__ = ["MAX_DAYS_AHEAD", "PostIn", "create_post"]


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
        raise InputError(
            f"a carousel holds 2-10 images, got {data.images}: use --images 2..10", field="images"
        )
    if data.formats[0] == "story":
        raise InputError(
            "a carousel cannot be a story: give a feed format first (--format)", field="formats"
        )
    return MediaType.CAROUSEL


# How far ahead a one-off may be planned: further is a typo more often than a plan.
MAX_DAYS_AHEAD = 731


def create_post(
    *, session: Session, handle: str, data: PostIn, settings: Settings, now: datetime
) -> Post:
    """A one-off post, checked as it will be published: its time, caption, instant and day."""
    influencer = get_influencer(session, handle)
    character = pick_character(session, influencer, data.character)
    tz = zone(influencer.timezone)
    _check_time(data.publish_at, tz, settings, now)
    post = Post(
        influencer_id=influencer.id,
        character_id=character.id,
        publish_at=data.publish_at,
        generate_at=data.publish_at - timedelta(minutes=check_lead_minutes(data.lead_minutes)),
        local_publish_time=local_label(data.publish_at, tz),
        scene=_preset("scene", data.scene, SCENES),
        environment=_preset("environment", data.environment, ENVIRONMENTS),
        outfit=check_text("outfit", data.outfit, field="outfit", most=MAX_PROMPT_CHARS),
        prompt_extra=check_text(
            "prompt", data.prompt_extra, field="prompt_extra", most=MAX_PROMPT_CHARS
        ),
        caption_text=data.caption_text,
        hashtags=list(data.hashtags),
        formats=check_formats(data.formats),
        media_type=_media_type(data),
        image_count=data.images,
    )
    check_post_caption(influencer=influencer, post=post)
    _check_instant_free(session, influencer, post)
    cap = daily_cap(influencer, settings)
    check_day_has_room(session, influencer=influencer, publish_at=post.publish_at, cap=cap)
    fix = "choose another time"
    with inserted_once(session, f"a post of {handle!r} at {post.local_publish_time}", fix):
        session.add(post)
    return post


def _preset(kind: str, name: str, presets: Collection[str]) -> str:
    if not name:
        return ""
    with for_field(kind):
        return check_presets(kind, [name], presets)[0]


def _check_time(publish_at: datetime, tz: ZoneInfo, settings: Settings, now: datetime) -> None:
    """From now (within the grace window) to ``MAX_DAYS_AHEAD`` ahead, as the import checks too."""
    if publish_at.tzinfo is None:
        raise InputError(
            "publish time has no zone: give a local time with the influencer's zone",
            field="publish_at",
        )
    label = local_label(publish_at, tz)
    if publish_at < now - timedelta(seconds=settings.grace_seconds):
        raise InputError(
            f"publish time {label} is in the past: a one-off post needs a time from now on "
            "(e.g. 'now', '+2h' or a coming 'YYYY-MM-DD HH:MM')",
            field="publish_at",
        )
    if publish_at > now + timedelta(days=MAX_DAYS_AHEAD):
        raise InputError(
            f"publish time {label} is more than {MAX_DAYS_AHEAD} days ahead: "
            "plan one-off posts within two years",
            field="publish_at",
        )


def _check_instant_free(session: Session, influencer: Influencer, post: Post) -> None:
    """One post per influencer per instant: a second one at the same time would go out twice."""
    taken = session.scalars(
        select(Post.id).where(
            Post.influencer_id == influencer.id,
            Post.publish_at == post.publish_at,
            Post.status != PostStatus.CANCELLED,
        )
    ).first()
    if taken is not None:
        raise InputError(
            f"{influencer.handle!r} already has post {taken} at {post.local_publish_time}: "
            f"choose another time, or cancel that one first (`ryla post cancel {taken}`)",
            field="publish_at",
        )
