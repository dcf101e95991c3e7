"""Small builders for publisher tests: real JPEGs made with Pillow, requests, a checkpoint log.

The checkpoint log stands in for the attempt row: what it keeps is what a resume hands back.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.publishers.base import MediaItem, PublishRequest

__all__ = ["CheckpointLog", "make_jpeg", "media_item", "publish_request"]


def make_jpeg(width: int, height: int, *, kind: str = "JPEG", colour: str = "teal") -> bytes:
    """A small real image (``kind`` may be PNG to test refusals)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, kind)
    return buffer.getvalue()


def media_item(url: str, data: bytes, *, fmt: str = "feed_square") -> MediaItem:
    return MediaItem(
        format=fmt,
        path=Path(f"/nonexistent/{fmt}.jpg"),  # Instagram fetches the URL, never the file
        url=url,
        content_type="image/jpeg",
        sha256=hashlib.sha256(data).hexdigest(),
    )


def publish_request(
    *media: MediaItem,
    media_type: str = "image",
    caption: str = "Morning light in Lisbon #travel",
    resume: dict[str, Any] | None = None,
    post_id: int = 7,
) -> PublishRequest:
    return PublishRequest(
        post_id=post_id,
        attempt_id="5f0c2d8e-0000-4000-8000-000000000007",
        handle="lisbon.lena",
        caption=caption,
        alt_text="A woman on a tram at sunrise",
        media_type=media_type,
        media=media,
        publish_at=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        resume=resume or {},
    )


@dataclass
class CheckpointLog:
    """Records every checkpoint; ``resume`` is what the attempt row would hold afterwards."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, key: str, value: str) -> None:
        self.calls.append((key, value))

    @property
    def resume(self) -> dict[str, str]:
        return {key: value for key, value in self.calls}

    def keys(self) -> list[str]:
        return [key for key, _ in self.calls]
