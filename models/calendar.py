"""Content calendars and their slot rules: when an influencer posts, and what to rotate.

A rule is days of week + local times in the influencer's zone, with presets to rotate.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, JSONType, UTCDateTime, utcnow


class ContentCalendar(Base):
    __tablename__ = "content_calendars"
    __table_args__ = (UniqueConstraint("influencer_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    influencer_id: Mapped[int] = mapped_column(ForeignKey("influencers.id", ondelete="CASCADE"))
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    lead_minutes: Mapped[int] = mapped_column(Integer, default=30)
    formats: Mapped[list[str]] = mapped_column(JSONType, default=lambda: ["feed_portrait"])
    # Posts exist for every slot before this instant; the beat extends it as time passes.
    planned_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    rules: Mapped[list[SlotRule]] = relationship(
        back_populates="calendar", cascade="all, delete-orphan", order_by="SlotRule.id"
    )


class SlotRule(Base):
    __tablename__ = "slot_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("content_calendars.id", ondelete="CASCADE"), index=True
    )
    # ISO weekdays, 1 = Monday … 7 = Sunday; times as "HH:MM" local wall-clock times.
    days_of_week: Mapped[list[int]] = mapped_column(JSONType)
    times: Mapped[list[str]] = mapped_column(JSONType)
    scenes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    environments: Mapped[list[str]] = mapped_column(JSONType, default=list)
    outfits: Mapped[list[str]] = mapped_column(JSONType, default=list)
    caption_text: Mapped[str] = mapped_column(Text, default="")
    hashtags: Mapped[list[str]] = mapped_column(JSONType, default=list)

    calendar: Mapped[ContentCalendar] = relationship(back_populates="rules")
