"""The visual plan: a 3-column profile grid, newest first, thumbnails or labelled placeholders.

``plan_tiles`` is checked against an in-memory SQLite database and a folder of stored files.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from models import Asset, AssetKind, Base, Character, Influencer, Post, PostStatus
from pipeline.errors import PlanError
from pipeline.media.storage import LocalStorage
from pipeline.planning.feed_plan import (
    COLUMNS,
    GAP,
    HEADER_HEIGHT,
    TILE_SIZE,
    PlanTile,
    draw_feed_plan,
    plan_tiles,
)

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
PLACEHOLDER_GREY = (236, 236, 241)


def _solid_jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (300, 375), colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _tile(
    post_id: int, hours: int, thumbnail: bytes | None = None, status: str = "ready"
) -> PlanTile:
    when = (NOW + timedelta(hours=hours)).astimezone(PARIS)
    return PlanTile(post_id, when, "morning_coffee", status, thumbnail)


def _cell_pixel(png: bytes, index: int) -> tuple[int, ...]:
    """A pixel near the top of the grid cell at ``index`` (row-major), clear of the label."""
    row, column = divmod(index, COLUMNS)
    x = GAP + column * (TILE_SIZE[0] + GAP) + TILE_SIZE[0] // 2
    y = HEADER_HEIGHT + row * (TILE_SIZE[1] + GAP) + 20
    return tuple(Image.open(io.BytesIO(png)).convert("RGB").getpixel((x, y)))  # type: ignore[arg-type]


def _near(pixel: tuple[int, ...], colour: tuple[int, ...], tolerance: int = 8) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


# --- drawing -------------------------------------------------------------------------------


def test_plan_is_a_png_grid_of_three_columns() -> None:
    png = draw_feed_plan([_tile(i, i) for i in range(7)], title="@lina · next 14 days")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.width == COLUMNS * TILE_SIZE[0] + (COLUMNS + 1) * GAP
    assert image.height == HEADER_HEIGHT + 3 * (TILE_SIZE[1] + GAP) + GAP  # 7 posts: 3 rows


def test_newest_post_is_drawn_top_left_as_the_profile_shows_it() -> None:
    red, green, blue = (220, 30, 30), (30, 200, 60), (40, 60, 230)
    tiles = [
        _tile(1, 24, _solid_jpeg(red)),
        _tile(2, 72, _solid_jpeg(blue)),  # the newest
        _tile(3, 48, _solid_jpeg(green)),
    ]
    png = draw_feed_plan(tiles, title="plan")
    assert [_near(_cell_pixel(png, i), c) for i, c in enumerate([blue, green, red])] == [True] * 3


def test_post_without_a_thumbnail_gets_a_labelled_placeholder() -> None:
    png = draw_feed_plan([_tile(1, 5), _tile(2, 1, _solid_jpeg((30, 200, 60)))], title="plan")
    assert _near(_cell_pixel(png, 0), PLACEHOLDER_GREY, tolerance=2)
    assert _near(_cell_pixel(png, 1), (30, 200, 60))


def test_unreadable_thumbnail_falls_back_to_the_placeholder() -> None:
    png = draw_feed_plan([_tile(1, 5, b"not a jpeg")], title="plan")
    assert _near(_cell_pixel(png, 0), PLACEHOLDER_GREY, tolerance=2)


def test_empty_plan_still_draws_a_titled_image() -> None:
    image = Image.open(io.BytesIO(draw_feed_plan([], title="@lina · next 14 days")))
    assert image.height == HEADER_HEIGHT + TILE_SIZE[1] + 2 * GAP


def test_same_tiles_give_the_same_png_bytes() -> None:
    tiles = [_tile(1, 5), _tile(2, 9, _solid_jpeg((10, 10, 10)), status="failed")]
    assert draw_feed_plan(tiles, title="t") == draw_feed_plan(list(reversed(tiles)), title="t")


# --- reading the database ------------------------------------------------------------------


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as db:
        yield db
    engine.dispose()


def _influencer(db: Session, handle: str) -> tuple[Influencer, Character]:
    influencer = Influencer(handle=handle, display_name=handle.title(), timezone="Europe/Paris")
    db.add(influencer)
    db.flush()
    character = Character(influencer_id=influencer.id, name="main")
    db.add(character)
    db.flush()
    return influencer, character


def _post(db: Session, owner: tuple[Influencer, Character], hours: float, **fields: object) -> Post:
    at = NOW + timedelta(hours=hours)
    post = Post(influencer_id=owner[0].id, character_id=owner[1].id, publish_at=at,
                generate_at=at - timedelta(hours=1), scene="city_walk", **fields)  # fmt: skip
    db.add(post)
    db.flush()
    return post


def _thumbnail(
    db: Session, storage: LocalStorage, post: Post, generation: int, data: bytes
) -> None:
    key = f"posts/{post.id}/g{generation}/thumbnail.jpg"
    stored = storage.put(key, data)
    db.add(Asset(post_id=post.id, generation=generation, kind=AssetKind.THUMBNAIL,
                 format="thumbnail", storage_key=key, content_type="image/jpeg", width=300,
                 height=375, bytes=stored.size, sha256=stored.sha256, meta={}))  # fmt: skip
    db.flush()


def test_plan_tiles_take_the_window_newest_first_with_current_thumbnails(
    session: Session, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    lina = _influencer(session, "lina")
    other = _influencer(session, "other")
    rendered = _post(session, lina, 30, generation=2, status=PostStatus.READY)
    _thumbnail(session, storage, rendered, 1, _solid_jpeg((1, 1, 1)))  # an old generation
    _thumbnail(session, storage, rendered, 2, current := _solid_jpeg((200, 10, 10)))
    stale = _post(session, lina, 100, generation=3)
    _thumbnail(session, storage, stale, 2, _solid_jpeg((5, 5, 5)))  # regenerated since
    planned = _post(session, lina, 5)
    _post(session, lina, -2)  # already past
    _post(session, lina, 24 * 15)  # beyond 14 days
    _post(session, lina, 50, status=PostStatus.CANCELLED)
    _post(session, other, 10)

    tiles = plan_tiles(session, influencer_id=lina[0].id, days=14, now=NOW, storage=storage)

    assert [t.post_id for t in tiles] == [stale.id, rendered.id, planned.id]
    assert [t.thumbnail for t in tiles] == [None, current, None]
    assert tiles[1].status == "ready" and tiles[0].scene == "city_walk"
    assert tiles[2].when == (NOW + timedelta(hours=5)).astimezone(PARIS)
    assert tiles[2].when.utcoffset() == timedelta(hours=1)


def test_plan_tile_says_when_the_thumbnail_file_is_missing(
    session: Session, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    lina = _influencer(session, "lina")
    post = _post(session, lina, 3)
    _thumbnail(session, storage, post, 0, _solid_jpeg((9, 9, 9)))
    storage.delete(f"posts/{post.id}/g0/thumbnail.jpg")
    (tile,) = plan_tiles(session, influencer_id=lina[0].id, days=1, now=NOW, storage=storage)
    assert tile.thumbnail is None and tile.note == "thumbnail file missing"


def test_plan_tiles_and_drawing_work_together(session: Session, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    lina = _influencer(session, "lina")
    post = _post(session, lina, 3)
    _thumbnail(session, storage, post, 0, _solid_jpeg((30, 200, 60)))
    _post(session, lina, 1)
    tiles = plan_tiles(session, influencer_id=lina[0].id, days=2, now=NOW, storage=storage)
    png = draw_feed_plan(tiles, title="@lina")
    assert _near(_cell_pixel(png, 0), (30, 200, 60))
    assert _near(_cell_pixel(png, 1), PLACEHOLDER_GREY, tolerance=2)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"days": 14, "now": datetime(2026, 11, 16)}, "no time zone"),
        ({"days": 0, "now": NOW}, "days=0 is outside"),
        ({"days": 14, "now": NOW, "influencer_id": 999}, "no influencer with id 999"),
    ],
)
def test_plan_tiles_refuse_bad_arguments_with_one_clear_line(
    session: Session, tmp_path: Path, arguments: dict[str, object], expected: str
) -> None:
    lina = _influencer(session, "lina")
    call: dict[str, object] = {"influencer_id": lina[0].id, **arguments}
    with pytest.raises(PlanError, match=expected):
        plan_tiles(session, storage=LocalStorage(tmp_path), **call)  # type: ignore[arg-type]
