"""Influencers and their characters: created with every input checked first.

Bad input raises ``InputError`` and adds no row; the caller owns the commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import (
    Character,
    Influencer,
    Post,
    PostStatus,
    SeedPolicy,
)
from pipeline.errors import InputError, NotFound
from pipeline.planning.caption_limits import check_influencer_captions
from pipeline.planning.frequency import MAX_POSTS_PER_DAY, check_daily_cap, influencer_rules
from pipeline.planning.times import iana_zone
from pipeline.settings import Settings
from pipeline.validation import (
    MAX_PROMPT_CHARS,
    check_lora,
    check_name,
    check_text,
    for_field,
    inserted_once,
    shown,
)

__all__ = [
    "CharacterIn",
    "InfluencerIn",
    "InfluencerRow",
    "check_daily_cap_value",
    "create_character",
    "create_influencer",
    "get_influencer",
    "handle_key",
    "influencer_rows",
    "pick_character",
    "set_daily_cap",
]


_HANDLE = re.compile(r"^[A-Za-z0-9._]{1,30}$")


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
    max_posts_per_day: int | None = None  # None: the RYLA_MAX_POSTS_PER_DAY setting


def handle_key(handle: str) -> str:
    """Handles as stored and looked up: Instagram's ignore case, so ``Mia`` is ``mia``."""
    return handle.strip().lower()


def get_influencer(session: Session, handle: str) -> Influencer:
    influencer = session.scalars(
        select(Influencer).where(Influencer.handle == handle_key(handle))
    ).first()
    if influencer is None:
        raise NotFound(
            f"unknown influencer {handle!r}: list them with `ryla influencer list` or add one "
            "with `ryla influencer add`",
            field="handle",
        )
    return influencer


def create_influencer(*, session: Session, data: InfluencerIn) -> Influencer:
    """A new influencer, every field checked (its caption template at its longest) first."""
    if not _HANDLE.match(data.handle):
        raise InputError(
            f"invalid handle {shown(data.handle)}: use 1-30 letters, digits, '.' or '_'",
            field="handle",
        )
    with for_field("timezone"):
        iana_zone(data.timezone)
    handle = handle_key(data.handle)
    influencer = Influencer(
        handle=handle,
        display_name=check_name("display name", data.display_name, field="display_name"),
        timezone=data.timezone,
        persona=check_text("persona", data.persona, field="persona", most=_MAX_ABOUT_CHARS),
        voice=check_text("voice", data.voice, field="voice", most=_MAX_ABOUT_CHARS),
        caption_template=data.caption_template,
        default_hashtags=list(data.default_hashtags),
        approval_required=data.approval_required,
        max_posts_per_day=check_daily_cap_value(data.max_posts_per_day),
    )
    check_influencer_captions(influencer)
    if session.scalars(select(Influencer.id).where(Influencer.handle == handle)).first():
        raise InputError(
            f"influencer {handle!r} already exists: choose another handle", field="handle"
        )
    fix = "choose another handle"
    with inserted_once(session, f"influencer {data.handle!r}", fix):
        session.add(influencer)
    return influencer


# Persona and voice are read into captions ({persona}), so no longer than a caption.
_MAX_ABOUT_CHARS = 2200


def check_daily_cap_value(cap: int | None) -> int | None:
    """An influencer's own cap of posts a day (None: follow the setting)."""
    if cap is not None and not 1 <= cap <= MAX_POSTS_PER_DAY:
        raise InputError(
            f"daily cap {cap} is out of range: use 1 to {MAX_POSTS_PER_DAY} posts a day "
            "(Instagram's own limit is 50 to 100)",
            field="max_posts_per_day",
        )
    return cap


def set_daily_cap(
    *, session: Session, handle: str, cap: int | None, settings: Settings, now: datetime
) -> Influencer:
    """Set (or, with None, drop) an influencer's own daily cap; its plans must fit under it."""
    influencer = get_influencer(session, handle)
    check_daily_cap_value(cap)
    rules = [rule for rule, _ in influencer_rules(session, influencer.id)]
    check_daily_cap(
        session,
        influencer=influencer,
        rules=rules,
        cap=cap or settings.max_posts_per_day,
        now=now,
    )
    influencer.max_posts_per_day = cap
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
    """A new character of an influencer; a LoRA must exist here and be safetensors."""
    influencer = get_influencer(session, handle)
    fields = dict(data.__dict__)
    fields["name"] = check_name("character name", data.name, field="name")
    for name, most in _CHARACTER_TEXT.items():
        check_text(name.replace("_", " "), fields[name], field=name, most=most)
    if data.lora_path:
        fields["lora_path"] = check_lora(data.lora_path)
    if not 0 <= data.seed < 2**31:
        raise InputError(f"seed {data.seed} is out of range: use 0 to 2147483647", field="seed")
    if not 0 <= data.lora_scale <= 2:
        raise InputError(
            f"LoRA scale {data.lora_scale} is out of range: use 0 to 2", field="lora_scale"
        )
    if _character(session, influencer.id, fields["name"]) is not None:
        raise InputError(
            f"character {fields['name']!r} already exists for {handle!r}: choose another name",
            field="name",
        )
    character = Character(influencer_id=influencer.id, **fields)
    with inserted_once(
        session, f"character {fields['name']!r} of {handle!r}", "choose another name"
    ):
        session.add(character)
    return character


# The character's text fields and their lengths: the String columns' own, and a prompt part's.
_CHARACTER_TEXT = {
    "age": 40,
    "ethnicity": 80,
    "hair": 120,
    "eyes": 80,
    "body": 120,
    "trigger_word": 64,
    "features": MAX_PROMPT_CHARS,
    "default_outfit": MAX_PROMPT_CHARS,
    "identity_prompt": 2 * MAX_PROMPT_CHARS,
    "negative_prompt": 2 * MAX_PROMPT_CHARS,
}


def _character(session: Session, influencer_id: int, name: str) -> Character | None:
    return session.scalars(
        select(Character).where(Character.influencer_id == influencer_id, Character.name == name)
    ).first()


def pick_character(session: Session, influencer: Influencer, name: str | None) -> Character:
    if name:
        character = _character(session, influencer.id, name)
        if character is None:
            raise NotFound(
                f"unknown character {name!r} for {influencer.handle!r}: add it with "
                "`ryla character add`",
                field="character",
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


@dataclass(frozen=True)
class InfluencerRow:
    handle: str
    name: str
    timezone: str
    cap: int | None  # None: the setting's
    active: bool
    approval: bool
    upcoming: int  # posts from now on that are not cancelled or missed


def influencer_rows(session: Session, *, now: datetime) -> list[InfluencerRow]:
    """Every influencer with how many of its posts are still to come, by handle."""
    coming = (
        select(Post.influencer_id, func.count().label("n"))
        .where(
            Post.publish_at >= now, Post.status.not_in([PostStatus.CANCELLED, PostStatus.MISSED])
        )
        .group_by(Post.influencer_id)
        .subquery()
    )
    rows = session.execute(
        select(Influencer, func.coalesce(coming.c.n, 0))
        .outerjoin(coming, coming.c.influencer_id == Influencer.id)
        .order_by(Influencer.handle)
    )
    return [
        InfluencerRow(
            handle=i.handle,
            name=i.display_name,
            timezone=i.timezone,
            cap=i.max_posts_per_day,
            active=i.active,
            approval=i.approval_required,
            upcoming=int(n),
        )
        for i, n in rows
    ]
