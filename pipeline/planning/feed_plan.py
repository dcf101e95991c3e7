"""The visual plan: an influencer's coming feed drawn as a profile's 3-column grid, one PNG.

Newest first, as the profile shows it; thumbnails where rendered, labelled placeholders where not.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont, ImageOps
from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from models import Asset, AssetKind, Influencer, Post, PostStatus
from pipeline.errors import PlanError, StorageError
from pipeline.media.storage import Storage

__all__ = ["PlanError", "PlanTile", "draw_feed_plan", "plan_tiles"]

COLUMNS = 3
TILE_SIZE = (270, 360)  # 3:4, the profile grid's shape since 2025
GAP = 4
HEADER_HEIGHT = 72
MAX_DAYS = 90
_MAX_THUMBNAIL_PIXELS = 4_000_000
_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_STATUS_COLOURS = {
    "ready": (46, 160, 67),
    "approved": (46, 160, 67),
    "published": (46, 160, 67),
    "awaiting_approval": (219, 140, 0),
    "failed": (210, 45, 45),
    "unknown": (210, 45, 45),
    "missed": (210, 45, 45),
}
_NEUTRAL = (110, 110, 120)


@dataclass(frozen=True)
class PlanTile:
    post_id: int
    when: datetime  # the publish time, in the influencer's own time zone
    scene: str
    status: str
    thumbnail: bytes | None = None  # JPEG bytes of the current generation's thumbnail
    note: str = ""


def plan_tiles(
    session: Session, *, influencer_id: int, days: int, now: datetime, storage: Storage
) -> list[PlanTile]:
    """Posts publishing in [now, now + days], newest first, with their current thumbnail."""
    if now.tzinfo is None:
        raise PlanError(f"now={now.isoformat()} has no time zone: pass an aware instant")
    if not 1 <= days <= MAX_DAYS:
        raise PlanError(f"days={days} is outside 1-{MAX_DAYS}: pick a shorter window")
    influencer = session.get(Influencer, influencer_id)
    if influencer is None:
        raise PlanError(f"no influencer with id {influencer_id}: check the handle")
    zone = ZoneInfo(influencer.timezone)
    tiles: dict[int, PlanTile] = {}
    for post, asset in session.execute(_window_query(influencer_id, now, days)):
        if post.id not in tiles:
            tiles[post.id] = _tile(post, asset, zone, storage)
    return list(tiles.values())


def _window_query(influencer_id: int, now: datetime, days: int) -> Select[Post, Asset]:
    current_thumbnail = and_(
        Asset.post_id == Post.id,
        Asset.kind == AssetKind.THUMBNAIL,
        Asset.generation == Post.generation,
    )
    return (
        select(Post, Asset)
        .outerjoin(Asset, current_thumbnail)
        .where(
            Post.influencer_id == influencer_id,
            Post.publish_at >= now,
            Post.publish_at <= now + timedelta(days=days),
            # A cancelled post will never be on the profile, so it has no place in its plan.
            Post.status != PostStatus.CANCELLED,
        )
        .order_by(Post.publish_at.desc(), Post.id.desc(), Asset.id)
    )


def _tile(post: Post, asset: Asset | None, zone: ZoneInfo, storage: Storage) -> PlanTile:
    thumbnail, note = None, ""
    if asset is not None:
        try:
            thumbnail = storage.get(asset.storage_key)
        except (OSError, StorageError):
            note = "thumbnail file missing"
    return PlanTile(
        post_id=post.id,
        when=post.publish_at.astimezone(zone),
        scene=post.scene,
        status=str(post.status),
        thumbnail=thumbnail,
        note=note,
    )


def draw_feed_plan(tiles: Sequence[PlanTile], *, title: str, subtitle: str = "") -> bytes:
    """The grid as PNG bytes: three columns, the latest post top-left, like a profile page."""
    ordered = sorted(tiles, key=lambda t: (t.when, t.post_id), reverse=True)
    rows = max(1, math.ceil(len(ordered) / COLUMNS))
    width = COLUMNS * TILE_SIZE[0] + (COLUMNS + 1) * GAP
    height = HEADER_HEIGHT + rows * (TILE_SIZE[1] + GAP) + GAP
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    _draw_header(canvas, title, subtitle or _default_subtitle(ordered))
    for index, tile in enumerate(ordered):
        row, column = divmod(index, COLUMNS)
        x = GAP + column * (TILE_SIZE[0] + GAP)
        y = HEADER_HEIGHT + row * (TILE_SIZE[1] + GAP)
        canvas.paste(_tile_image(tile), (x, y))
    if not ordered:
        _draw_centred(canvas, ["nothing scheduled in this window"], HEADER_HEIGHT, _font(18))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


def _default_subtitle(tiles: Sequence[PlanTile]) -> str:
    count = f"{len(tiles)} post{'s' if len(tiles) != 1 else ''}"
    zone = f" · times in {tiles[0].when.tzname()}" if tiles else ""
    return f"{count} · newest first, as the profile shows it{zone}"


def _draw_header(canvas: Image.Image, title: str, subtitle: str) -> None:
    draw = ImageDraw.Draw(canvas)
    limit = canvas.width - 2 * GAP - 12
    draw.text((GAP + 6, 12), _fit(draw, title, _font(24), limit), font=_font(24), fill=(0, 0, 0))
    small = _font(14)
    draw.text((GAP + 6, 46), _fit(draw, subtitle, small, limit), font=small, fill=_NEUTRAL)


def _tile_image(tile: PlanTile) -> Image.Image:
    picture = _open_thumbnail(tile.thumbnail) if tile.thumbnail else None
    if picture is None:
        note = tile.note or ("thumbnail unreadable" if tile.thumbnail else "not rendered yet")
        return _placeholder(tile, note)
    image = ImageOps.fit(picture, TILE_SIZE, Image.Resampling.BICUBIC, centering=(0.5, 0.4))
    _draw_label_strip(image, tile)
    return image


def _open_thumbnail(data: bytes) -> Image.Image | None:
    try:
        image = Image.open(io.BytesIO(data), formats=("JPEG", "PNG"))
        if image.width * image.height > _MAX_THUMBNAIL_PIXELS:
            return None
        return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _placeholder(tile: PlanTile, note: str) -> Image.Image:
    image = Image.new("RGB", TILE_SIZE, (236, 236, 241))
    draw = ImageDraw.Draw(image)
    colour = _STATUS_COLOURS.get(tile.status, _NEUTRAL)
    draw.rectangle((0, 0, TILE_SIZE[0] - 1, TILE_SIZE[1] - 1), outline=colour, width=3)
    lines = [
        tile.when.strftime("%a %d %b"),
        tile.when.strftime("%H:%M"),
        tile.scene.replace("_", " ") or "no scene",
        tile.status.replace("_", " ").upper(),
        note,
    ]
    _draw_centred(image, lines, 0, _font(20), highlight=(3, colour))
    return image


def _draw_label_strip(image: Image.Image, tile: PlanTile) -> None:
    draw = ImageDraw.Draw(image, "RGBA")
    top = TILE_SIZE[1] - 44
    draw.rectangle((0, top, TILE_SIZE[0], TILE_SIZE[1]), fill=(0, 0, 0, 170))
    when = tile.when.strftime("%a %d %b · %H:%M")
    draw.text((8, top + 6), when, font=_font(15), fill=(255, 255, 255))
    status = tile.status.replace("_", " ")
    colour = _STATUS_COLOURS.get(tile.status, (200, 200, 205))
    draw.text((8, top + 24), status, font=_font(13), fill=colour)


def _draw_centred(
    image: Image.Image,
    lines: list[str],
    top: int,
    font: _Font,
    *,
    highlight: tuple[int, tuple[int, int, int]] | None = None,
) -> None:
    """Lines stacked in the middle of the area below ``top``; one may take its own colour."""
    draw = ImageDraw.Draw(image)
    lines = [line for line in lines if line]
    step = 30
    y = top + (image.height - top - step * len(lines)) // 2 + step // 2
    for index, line in enumerate(lines):
        fill = highlight[1] if highlight and index == highlight[0] else (60, 60, 70)
        text = _fit(draw, line, font, image.width - 16)
        draw.text((image.width // 2, y + index * step), text, font=font, fill=fill, anchor="mm")


def _fit(draw: ImageDraw.ImageDraw, text: str, font: _Font, width: int) -> str:
    """The text, cut with an ellipsis where it would run past ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(f"{text}…", font=font) > width:
        text = text[:-1]
    return f"{text.rstrip()}…"


@cache
def _font(size: int) -> _Font:
    return ImageFont.load_default(size=size)
