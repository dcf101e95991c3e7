"""Creating influencers, characters, calendars and one-off posts, with every input checked first.

Each function validates everything before it adds a row, so bad input writes nothing; the caller
owns the commit.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    Character,
    ContentCalendar,
    Influencer,
    MediaType,
    Post,
    SeedPolicy,
    SlotRule,
)
from pipeline.generators.sizes import NATIVE_SIZES
from pipeline.prompts import ENVIRONMENTS, SCENES
from pipeline.schedule import ScheduleError, local_label, parse_days, parse_times, zone

__all__ = [
    "CalendarIn",
    "CharacterIn",
    "InfluencerIn",
    "InputError",
    "PostIn",
    "create_calendar",
    "create_character",
    "create_influencer",
    "create_post",
    "get_influencer",
    "pick_character",
]

_HANDLE = re.compile(r"^[A-Za-z0-9._]{1,30}$")


class InputError(ValueError):
    """Input a person gave is wrong; the message names the field, the value and the fix."""


@dataclass(frozen=True)
class InfluencerIn:
    handle: str
    display_name: str
    timezone: str
    persona: str = ""
    voice: str = ""
    caption_template: str = "{text}"
    default_hashtags: Sequence[str] = ()
    approval_required: bool = False


def get_influencer(session: Session, handle: str) -> Influencer:
    influencer = session.scalars(select(Influencer).where(Influencer.handle == handle)).first()
    if influencer is None:
        raise InputError(
            f"unknown influencer {handle!r}: list them with `ryla status` or add one "
            "with `ryla influencer add`"
        )
    return influencer


def create_influencer(*, session: Session, data: InfluencerIn) -> Influencer:
    if not _HANDLE.match(data.handle):
        raise InputError(f"invalid handle {data.handle!r}: use 1-30 letters, digits, '.' or '_'")
    try:
        zone(data.timezone)
    except ScheduleError as exc:
        raise InputError(str(exc)) from None
    if session.scalars(select(Influencer.id).where(Influencer.handle == data.handle)).first():
        raise InputError(f"influencer {data.handle!r} already exists: choose another handle")
    influencer = Influencer(
        handle=data.handle,
        display_name=data.display_name,
        timezone=data.timezone,
        persona=data.persona,
        voice=data.voice,
        caption_template=data.caption_template,
        default_hashtags=list(data.default_hashtags),
        approval_required=data.approval_required,
    )
    session.add(influencer)
    session.flush()
    return influencer


@dataclass(frozen=True)
class CharacterIn:
    name: str
    identity_prompt: str = ""
    age: str = ""
    ethnicity: str = ""
    hair: str = ""
    eyes: str = ""
    body: str = ""
    features: str = ""
    default_outfit: str = ""
    negative_prompt: str = ""
    trigger_word: str = ""
    lora_path: str | None = None
    lora_scale: float = 1.0
    seed_policy: SeedPolicy = SeedPolicy.FIXED
    seed: int = 0


def create_character(*, session: Session, handle: str, data: CharacterIn) -> Character:
    influencer = get_influencer(session, handle)
    if data.lora_path and not data.lora_path.endswith(".safetensors"):
        raise InputError(
            f"LoRA {data.lora_path!r} is not a .safetensors file: pickled weights "
            "can run code, convert it to safetensors"
        )
    if not 0 <= data.seed < 2**31:
        raise InputError(f"seed {data.seed} is out of range: use 0 to 2147483647")
    if _character(session, influencer.id, data.name) is not None:
        raise InputError(f"character {data.name!r} already exists for {handle!r}")
    character = Character(influencer_id=influencer.id, **data.__dict__)
    session.add(character)
    session.flush()
    return character


def _character(session: Session, influencer_id: int, name: str) -> Character | None:
    return session.scalars(
        select(Character).where(Character.influencer_id == influencer_id, Character.name == name)
    ).first()


def pick_character(session: Session, influencer: Influencer, name: str | None) -> Character:
    if name:
        character = _character(session, influencer.id, name)
        if character is None:
            raise InputError(
                f"unknown character {name!r} for {influencer.handle!r}: add it with "
                "`ryla character add`"
            )
        return character
    first = session.scalars(
        select(Character).where(Character.influencer_id == influencer.id).order_by(Character.id)
    ).first()
    if first is None:
        raise InputError(
            f"{influencer.handle!r} has no character yet: add one with `ryla character add`"
        )
    return first


def _check_presets(kind: str, names: Sequence[str], presets: Collection[str]) -> list[str]:
    for name in names:
        if name not in presets:
            raise InputError(f"unknown {kind} {name!r}: choose from {', '.join(presets)}")
    return list(names)


def _check_formats(formats: Sequence[str]) -> list[str]:
    if not formats:
        raise InputError(f"no format given: choose from {', '.join(NATIVE_SIZES)}")
    return _check_presets("format", formats, NATIVE_SIZES)


@dataclass(frozen=True)
class CalendarIn:
    name: str
    days: str
    times: str
    character: str | None = None
    scenes: Sequence[str] = ()
    environments: Sequence[str] = ()
    outfits: Sequence[str] = ()
    formats: Sequence[str] = ("feed_portrait",)
    lead_minutes: int = 30
    caption_text: str = ""
    hashtags: Sequence[str] = field(default_factory=tuple)


def create_calendar(*, session: Session, handle: str, data: CalendarIn) -> ContentCalendar:
    influencer = get_influencer(session, handle)
    character = pick_character(session, influencer, data.character)
    try:
        days, times = parse_days(data.days), parse_times(data.times)
    except ScheduleError as exc:
        raise InputError(str(exc)) from None
    if not 0 <= data.lead_minutes <= 24 * 60:
        raise InputError(f"lead time {data.lead_minutes} min is out of range: use 0 to 1440")
    rule = SlotRule(
        days_of_week=days,
        times=times,
        scenes=_check_presets("scene", data.scenes, SCENES),
        environments=_check_presets("environment", data.environments, ENVIRONMENTS),
        outfits=list(data.outfits),
        caption_text=data.caption_text,
        hashtags=list(data.hashtags),
    )
    calendar = ContentCalendar(
        influencer_id=influencer.id,
        character_id=character.id,
        name=data.name,
        lead_minutes=data.lead_minutes,
        formats=_check_formats(data.formats),
        rules=[rule],
    )
    if session.scalars(
        select(ContentCalendar.id).where(
            ContentCalendar.influencer_id == influencer.id, ContentCalendar.name == data.name
        )
    ).first():
        raise InputError(f"calendar {data.name!r} already exists for {handle!r}")
    session.add(calendar)
    session.flush()
    return calendar


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
        scene=_check_presets("scene", [data.scene], SCENES)[0] if data.scene else "",
        environment=(
            _check_presets("environment", [data.environment], ENVIRONMENTS)[0]
            if data.environment
            else ""
        ),
        outfit=data.outfit,
        prompt_extra=data.prompt_extra,
        caption_text=data.caption_text,
        hashtags=list(data.hashtags),
        formats=_check_formats(data.formats),
        media_type=_media_type(data),
        image_count=data.images,
    )
    session.add(post)
    session.flush()
    return post
