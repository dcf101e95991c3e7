"""Assets: the raw generated image of a post and its renditions, with their provenance.

Files live in storage under ``storage_key``; a row says what the bytes are and how they came to be.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, enum_column, utcnow


class AssetKind(StrEnum):
    RAW = "raw"
    RENDITION = "rendition"
    THUMBNAIL = "thumbnail"


class Asset(Base):
    __tablename__ = "assets"
    # A regeneration bumps the post's generation; older assets stay as history.
    __table_args__ = (UniqueConstraint("post_id", "generation", "kind", "format"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    kind: Mapped[AssetKind] = mapped_column(enum_column(AssetKind))
    format: Mapped[str] = mapped_column(String(32))
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    content_type: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
