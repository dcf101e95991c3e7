"""Influencers and their characters: created with every input checked first.

Bad input raises ``InputError`` and adds no row; the caller owns the commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    Character,
    Influencer,
    SeedPolicy,
)
from pipeline.errors import InputError, ScheduleError
from pipeline.planning.times import zone

__all__ = [
    "CharacterIn",
    "InfluencerIn",
    "create_character",
    "create_influencer",
    "get_influencer",
    "pick_character",
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
