"""Instagram renditions: the JPEGs that leave the CPU queue, and the post's thumbnail.

Same input, same bytes; JPEG only, sRGB, no EXIF.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

__all__ = ["FORMATS", "RenderError", "Rendition", "render_renditions", "render_thumbnail"]

FORMATS: dict[str, tuple[int, int]] = {
    "feed_square": (1080, 1080),
    "feed_portrait": (1080, 1350),
    "feed_landscape": (1080, 566),
    "story": (1080, 1920),
}


class RenderError(ValueError):
    """The source image or the requested format cannot be rendered."""


@dataclass(frozen=True)
class Rendition:
    format: str
    width: int
    height: int
    data: bytes
    content_type: str = "image/jpeg"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _open(source: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(source))
        image.load()
    except Exception as exc:
        raise RenderError(f"source is not a readable image ({exc})") from exc
    return image.convert("RGB")


def _jpeg(image: Image.Image, fmt: str) -> Rendition:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, optimize=True)
    return Rendition(fmt, image.width, image.height, buf.getvalue())


def render_renditions(source: bytes, formats: Sequence[str]) -> list[Rendition]:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise RenderError(f"unknown format {unknown[0]!r}: choose from {', '.join(FORMATS)}")
    image = _open(source)
    out = []
    for fmt in formats:
        size = FORMATS[fmt]
        out.append(_jpeg(ImageOps.fit(image, size, Image.Resampling.LANCZOS), fmt))
    return out


def render_thumbnail(source: bytes, width: int = 300) -> Rendition:
    image = _open(source)
    height = round(image.height * width / image.width)
    return _jpeg(image.resize((width, height), Image.Resampling.LANCZOS), "thumbnail")
