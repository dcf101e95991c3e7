"""Content calendars and their slot rules: when an influencer posts, and what to rotate.

A rule is days of week + local times, or an RFC 5545 RRULE, in the influencer's zone.
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
    # Days of posts kept planned ahead; None follows the RYLA_HORIZON_DAYS setting.
    horizon_days: Mapped[int | None] = mapped_column(Integer, default=None)
    # Posts exist for every slot before this instant; the beat extends it as time passes.
    planned_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The beat extends the plan at or after this instant (None: at the next tick).
    expand_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Why the beat could not plan it (its other calendars go on); cleared by a good plan.
    broken_reason: Mapped[str | None] = mapped_column(Text, default=None)
    broken_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
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
    # Simple rule: ISO weekdays, 1 = Monday … 7 = Sunday; times as "HH:MM" local wall times.
    days_of_week: Mapped[list[int]] = mapped_column(JSONType)
    times: Mapped[list[str]] = mapped_column(JSONType)
    # RRULE rule (days and times then empty): the rule's text, and its DTSTART as a local wall
    # time "YYYY-MM-DDTHH:MM" (a wall time, so a later zone change keeps the posting hours).
    rrule: Mapped[str | None] = mapped_column(Text, default=None)
    dtstart: Mapped[str | None] = mapped_column(String(16), default=None)
    # An occurrence of the RRULE (local wall time, like dtstart) and its ordinal counted from
    # dtstart, kept a little behind "now": expansion counts on from here, not from the start.
    anchor_at: Mapped[str | None] = mapped_column(String(16), default=None)
    anchor_n: Mapped[int | None] = mapped_column(Integer, default=None)
    scenes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    environments: Mapped[list[str]] = mapped_column(JSONType, default=list)
    outfits: Mapped[list[str]] = mapped_column(JSONType, default=list)
    caption_text: Mapped[str] = mapped_column(Text, default="")
    # Rotated like the scenes; variables such as {scene} or {day} are filled at planning time.
    caption_templates: Mapped[list[str]] = mapped_column(JSONType, default=list)
    hashtags: Mapped[list[str]] = mapped_column(JSONType, default=list)

    calendar: Mapped[ContentCalendar] = relationship(back_populates="rules")
