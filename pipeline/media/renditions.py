"""Instagram renditions: the JPEGs that leave the CPU queue, and the post's thumbnail.

Subject-aware crops; JPEG, sRGB + ICC, AI-source XMP, no EXIF, under 8 MiB; same input, same bytes.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import RenderError
from pipeline.media.framing import Box, Framing, crop_box, find_subject, resize_array
from pipeline.media.jpeg import ColourError, encode_jpeg, plain_png_size, to_srgb

__all__ = [
    "CAROUSEL_FORMATS",
    "FORMATS",
    "MAX_JPEG_BYTES",
    "MAX_SOURCE_PIXELS",
    "RenderSet",
    "Rendition",
    "check_formats",
    "load_pixels",
    "load_source",
    "nearest_feed_format",
    "render_carousel",
    "render_renditions",
    "render_set",
    "render_thumbnail",
]

FORMATS: dict[str, tuple[int, int]] = {
    "feed_square": (1080, 1080),
    "feed_portrait": (1080, 1350),
    "feed_landscape": (1080, 566),
    "story": (1080, 1920),
}
CAROUSEL_FORMATS = ("feed_square", "feed_portrait", "feed_landscape")
CAROUSEL_ITEMS = (2, 10)
MIN_SOURCE_SIDE = 320
MAX_SOURCE_PIXELS = 50_000_000  # a 50 MP photo; Pillow's own bomb check starts at ~89 MP
MAX_JPEG_BYTES = 8 * 1024 * 1024
QUALITY_STEPS = (90, 85, 80, 75, 70, 60, 50, 40)
THUMBNAIL_WIDTH = 300
THUMBNAIL_WIDTHS = (32, 1440)
# Decoders we accept sources from (JPEG covers MPO); others, e.g. EPS, are never tried.
_SOURCE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "GIF", "BMP", "AVIF")


@dataclass(frozen=True)
class Rendition:
    format: str
    width: int
    height: int
    data: bytes
    content_type: str = "image/jpeg"
    quality: int = 0
    crop: tuple[int, int, int, int] | None = None  # left, top, width, height in the source
    item: int = 0  # 1-based position in a carousel; 0 for a single image

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def name(self) -> str:
        """Unique within a post's generation: what ``Asset.format`` should hold."""
        return f"carousel_{self.item:02d}_{self.format}" if self.item else self.format

    @property
    def meta(self) -> dict[str, Any]:
        return {"quality": self.quality, "crop": list(self.crop or ()), "item": self.item}


@dataclass(frozen=True)
class RenderSet:
    """Everything the render step makes from one source, decoded and framed once."""

    renditions: tuple[Rendition, ...]
    thumbnail: Rendition
    faces: tuple[tuple[int, int, int, int], ...]


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The formats as a tuple, or RenderError for an empty list, an unknown name or a repeat."""
    if isinstance(formats, str):  # a lone name would be read letter by letter
        formats = [formats]
    if not formats:
        raise RenderError(f"no rendition format requested: name at least one of {_choices()}")
    for fmt in formats:
        if fmt not in FORMATS:
            raise RenderError(f"unknown rendition format {fmt!r}: choose from {_choices()}")
    repeated = sorted({f for f in formats if list(formats).count(f) > 1})
    if repeated:
        raise RenderError(f"rendition format {repeated[0]!r} is requested twice: list it once")
    return tuple(formats)


def load_source(source: bytes, *, max_pixels: int = MAX_SOURCE_PIXELS) -> Image.Image:
    """Decode, orient and convert to sRGB RGB, or raise RenderError saying what is wrong."""
    if not source:
        raise RenderError("source image is empty (0 bytes): regenerate the post's image")
    with warnings.catch_warnings():
        # Pillow only warns between 1x and 2x its limit; a warning must stop us too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = _decode(source, max_pixels)
        except RenderError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise RenderError(
                f"source image is too large to decode safely ({_one_line(exc)}): "
                f"limit is {max_pixels:,} pixels"
            ) from exc
        except UnidentifiedImageError as exc:
            raise RenderError(
                f"source is not an image ({len(source):,} bytes, no {'/'.join(_SOURCE_FORMATS)} "
                "signature): regenerate the post's image"
            ) from exc
        except Exception as exc:  # Pillow raises many types for damaged files
            raise RenderError(
                f"source image is corrupt or truncated ({type(exc).__name__}: {_one_line(exc)}): "
                "regenerate the post's image"
            ) from exc
    return image


def load_pixels(source: bytes, *, max_pixels: int = MAX_SOURCE_PIXELS) -> np.ndarray:
    """The source as 8-bit sRGB pixels in OpenCV's BGR order, which its JPEG encoder takes.

    Raises RenderError, as load_source does, saying what is wrong.
    """
    pixels = _decode_plain_png(source, max_pixels)
    if pixels is not None:
        return pixels
    import cv2

    return cv2.cvtColor(np.asarray(load_source(source, max_pixels=max_pixels)), cv2.COLOR_RGB2BGR)


def _decode_plain_png(source: bytes, max_pixels: int) -> np.ndarray | None:
    """OpenCV decodes the generators' plain PNGs ~20 % faster than Pillow and straight into an
    array; None sends the source through Pillow, which also words every error."""
    size = plain_png_size(source)
    if size is None or not _decodable(*size, max_pixels=max_pixels):
        return None
    import cv2

    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(source, np.uint8), flags)  # None when damaged
    return pixels if pixels is not None and pixels.shape == (size[1], size[0], 3) else None


def _decodable(width: int, height: int, *, max_pixels: int) -> bool:
    """Within every limit the Pillow path checks, so only Pillow ever reports a broken one."""
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    return min(width, height) >= MIN_SOURCE_SIDE and width * height <= limit


def render_set(
    source: bytes,
    formats: Sequence[str],
    *,
    thumbnail_width: int = THUMBNAIL_WIDTH,
    max_bytes: int = MAX_JPEG_BYTES,
    max_pixels: int = MAX_SOURCE_PIXELS,
) -> RenderSet:
    """Every requested format plus a thumbnail framed like the first format.

    Raises RenderError (one line: what, which value, what to do) for bad input or formats.
    """
    chosen = check_formats(formats)
    _check_thumbnail_width(thumbnail_width)
    pixels, framing = _analyse(load_pixels(source, max_pixels=max_pixels))
    renditions = tuple(_render_all(pixels, framing, chosen, max_bytes=max_bytes))
    first = renditions[0].crop or (0, 0, framing.width, framing.height)
    thumbnail = _thumbnail(pixels, Box(*first), thumbnail_width, max_bytes=max_bytes)
    faces = tuple(face.as_tuple() for face in framing.faces)
    return RenderSet(renditions=renditions, thumbnail=thumbnail, faces=faces)


def render_renditions(
    source: bytes,
    formats: Sequence[str],
    *,
    max_bytes: int = MAX_JPEG_BYTES,
    max_pixels: int = MAX_SOURCE_PIXELS,
) -> list[Rendition]:
    chosen = check_formats(formats)
    pixels, framing = _analyse(load_pixels(source, max_pixels=max_pixels))
    return _render_all(pixels, framing, chosen, max_bytes=max_bytes)


def render_thumbnail(
    source: bytes,
    width: int = THUMBNAIL_WIDTH,
    *,
    fmt: str | None = None,
    max_pixels: int = MAX_SOURCE_PIXELS,
) -> Rendition:
    """The whole source ``width`` px wide, or framed like ``fmt`` when one is given."""
    _check_thumbnail_width(width)
    pixels = load_pixels(source, max_pixels=max_pixels)
    box = Box(0, 0, pixels.shape[1], pixels.shape[0])
    if fmt is not None:
        ratio = _ratio(check_formats([fmt])[0])
        box = crop_box(find_subject(pixels, order="BGR"), ratio)
    return _thumbnail(pixels, box, width, max_bytes=MAX_JPEG_BYTES)


def render_carousel(
    sources: Sequence[bytes],
    fmt: str | None = None,
    *,
    max_bytes: int = MAX_JPEG_BYTES,
    max_pixels: int = MAX_SOURCE_PIXELS,
) -> list[Rendition]:
    """2-10 items, all at one feed ratio: ``fmt``, or the one nearest the first image's shape."""
    low, high = CAROUSEL_ITEMS
    if not low <= len(sources) <= high:
        raise RenderError(
            f"a carousel holds {low}-{high} images, got {len(sources)}: add or remove items"
        )
    if fmt is not None and fmt not in CAROUSEL_FORMATS:
        raise RenderError(
            f"carousel format {fmt!r} is not a feed format: "
            f"choose from {', '.join(CAROUSEL_FORMATS)}"
        )
    out: list[Rendition] = []
    for item, source in enumerate(sources, start=1):
        try:
            pixels, framing = _analyse(load_pixels(source, max_pixels=max_pixels))
            fmt = fmt or nearest_feed_format(framing.width, framing.height)
            box = crop_box(framing, _ratio(fmt))
            out.append(_render(pixels, box, fmt, {}, max_bytes=max_bytes, item=item))
        except RenderError as exc:
            raise RenderError(f"carousel item {item}: {exc}") from exc
    return out


def nearest_feed_format(width: int, height: int) -> str:
    """The feed format whose aspect ratio is closest to ``width / height`` (on a log scale)."""
    return min(CAROUSEL_FORMATS, key=lambda f: abs(math.log(width / height / _ratio(f))))


def _decode(source: bytes, max_pixels: int) -> Image.Image:
    image = Image.open(io.BytesIO(source), formats=_source_formats())
    width, height = image.size
    # Checked from the header, before a single pixel is decompressed.
    if width * height > max_pixels:
        raise RenderError(
            f"source is {width}x{height} px ({width * height:,} pixels), over the "
            f"{max_pixels:,}-pixel limit: generate or upload a smaller image"
        )
    if min(width, height) < MIN_SOURCE_SIDE:
        raise RenderError(
            f"source is {width}x{height} px; renditions need at least {MIN_SOURCE_SIDE} px on "
            "each side: generate at a larger size"
        )
    image.load()
    ImageOps.exif_transpose(image, in_place=True)
    try:
        return to_srgb(image)
    except ColourError as exc:
        raise RenderError(str(exc)) from exc


@cache
def _source_formats() -> tuple[str, ...]:
    Image.init()  # AVIF, for one, is only there in recent Pillow builds
    return tuple(name for name in _SOURCE_FORMATS if name in Image.OPEN)


def _analyse(pixels: np.ndarray) -> tuple[np.ndarray, Framing]:
    return pixels, find_subject(pixels, order="BGR")


def _render_all(
    pixels: np.ndarray, framing: Framing, formats: Sequence[str], *, max_bytes: int
) -> list[Rendition]:
    boxes = {fmt: crop_box(framing, _ratio(fmt)) for fmt in formats}
    shared = _shared_resizes(pixels, [(boxes[fmt], FORMATS[fmt]) for fmt in formats])
    return [_render(pixels, boxes[fmt], fmt, shared, max_bytes=max_bytes) for fmt in formats]


def _render(
    pixels: np.ndarray,
    box: Box,
    fmt: str,
    shared: dict[int, np.ndarray],
    *,
    max_bytes: int,
    item: int = 0,
) -> Rendition:
    width, height = FORMATS[fmt]
    data, quality = _encode_under(_resize(pixels, box, (width, height), shared), max_bytes, fmt)
    return Rendition(fmt, width, height, data, quality=quality, crop=box.as_tuple(), item=item)


def _shared_resizes(
    pixels: np.ndarray, jobs: list[tuple[Box, tuple[int, int]]]
) -> dict[int, np.ndarray]:
    """The whole source resized to each output width that two or more full-width crops need.

    Every format is 1080 px wide, so crops as wide as the source (every feed format's, for a
    source at 4:5 or taller) share one scale: one resize, then a row slice per format.
    """
    full = pixels.shape[1]
    widths = Counter(size[0] for box, size in jobs if box.left == 0 and box.width == full)
    return {
        width: resize_array(pixels, (width, round(pixels.shape[0] * width / full)))
        for width, count in widths.items()
        if count > 1
    }


def _thumbnail(pixels: np.ndarray, box: Box, width: int, *, max_bytes: int) -> Rendition:
    height = max(1, round(box.height * width / box.width))
    resized = _resize(pixels, box, (width, height), {})
    data, quality = _encode_under(resized, max_bytes, "thumbnail")
    return Rendition("thumbnail", width, height, data, quality=quality, crop=box.as_tuple())


def _resize(
    pixels: np.ndarray, box: Box, size: tuple[int, int], shared: dict[int, np.ndarray]
) -> np.ndarray:
    scaled = shared.get(size[0]) if box.left == 0 and box.width == pixels.shape[1] else None
    if scaled is not None:
        # The same rows as resizing the crop, to within half an output pixel.
        top = round(box.top * size[0] / box.width)
        if top + size[1] <= scaled.shape[0]:
            return scaled[top : top + size[1]]
    return resize_array(pixels[box.top : box.bottom, box.left : box.right], size)


def _encode_under(pixels: np.ndarray, max_bytes: int, fmt: str) -> tuple[bytes, int]:
    """Lower the quality step by step until the JPEG fits; never return one that does not."""
    size = 0
    for quality in QUALITY_STEPS:
        data = encode_jpeg(pixels, quality=quality)
        if len(data) <= max_bytes:
            return data, quality
        size = len(data)
    raise RenderError(
        f"{fmt} rendition is {size:,} bytes even at JPEG quality {QUALITY_STEPS[-1]}, over the "
        f"{max_bytes:,}-byte limit: simplify or regenerate the image"
    )


def _check_thumbnail_width(width: int) -> None:
    low, high = THUMBNAIL_WIDTHS
    if not low <= width <= high:
        raise RenderError(f"thumbnail width {width} px is outside {low}-{high} px: pick one inside")


def _ratio(fmt: str) -> float:
    width, height = FORMATS[fmt]
    return width / height


def _choices() -> str:
    return ", ".join(FORMATS)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
