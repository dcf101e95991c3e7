"""Influencers (the accounts) and their characters (the face, style and seed policy).

An influencer owns characters, calendars, posts and publish targets.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, JSONType, UTCDateTime, enum_column, utcnow


class SeedPolicy(StrEnum):
    FIXED = "fixed"  # the character's seed for every post: the most consistent look
    PER_POST = "per_post"  # derived from the post id: reproducible, varied
    RANDOM = "random"  # drawn at generation time and recorded on the asset


class Influencer(Base):
    __tablename__ = "influencers"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(30), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    persona: Mapped[str] = mapped_column(Text, default="")
    voice: Mapped[str] = mapped_column(Text, default="")
    caption_template: Mapped[str] = mapped_column(Text, default="{text}")
    default_hashtags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    approval_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # Posts a local day may hold; None follows the RYLA_MAX_POSTS_PER_DAY setting.
    max_posts_per_day: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    characters: Mapped[list[Character]] = relationship(back_populates="influencer")


class Character(Base):
    __tablename__ = "characters"
    __table_args__ = (UniqueConstraint("influencer_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    influencer_id: Mapped[int] = mapped_column(ForeignKey("influencers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # Appearance, in words the prompt builder joins into the identity.
    age: Mapped[str] = mapped_column(String(40), default="")
    ethnicity: Mapped[str] = mapped_column(String(80), default="")
    hair: Mapped[str] = mapped_column(String(120), default="")
    eyes: Mapped[str] = mapped_column(String(80), default="")
    body: Mapped[str] = mapped_column(String(120), default="")
    features: Mapped[str] = mapped_column(Text, default="")
    default_outfit: Mapped[str] = mapped_column(Text, default="")
    identity_prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    trigger_word: Mapped[str] = mapped_column(String(64), default="")
    lora_path: Mapped[str | None] = mapped_column(Text, default=None)
    lora_scale: Mapped[float] = mapped_column(Float, default=1.0)
    seed_policy: Mapped[SeedPolicy] = mapped_column(
        enum_column(SeedPolicy),
        default=SeedPolicy.FIXED,
    )
    seed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    influencer: Mapped[Influencer] = relationship(back_populates="characters")
