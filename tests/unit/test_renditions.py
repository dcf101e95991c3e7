"""Instagram renditions: sizes, framing on real photographs, JPEG properties, bad input.

Faces come from scikit-image's bundled astronaut photograph; its face box is a known constant.
"""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageDraw
from skimage import data

from pipeline.errors import RenderError
from pipeline.media.framing import Box, detect_faces
from pipeline.media.jpeg import DIGITAL_SOURCE_TYPE, srgb_icc
from pipeline.media.renditions import (
    FORMATS,
    RenderSet,
    Rendition,
    nearest_feed_format,
    render_carousel,
    render_renditions,
    render_set,
    render_thumbnail,
)

ALL_FORMATS = list(FORMATS)
# Where OpenCV's frontal-face cascade finds the astronaut's face in the 512x512 photograph.
ASTRONAUT_FACE = Box(177, 66, 95, 95)


def _png(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(image: Image.Image, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92, **options)
    return buf.getvalue()


def _reopen(rendition: Rendition) -> Image.Image:
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def _shifted(box: Box, dx: int, dy: int) -> Box:
    return Box(box.left + dx, box.top + dy, box.width, box.height)


def _crop(rendition: Rendition) -> Box:
    assert rendition.crop is not None
    return Box(*rendition.crop)


def _on_canvas(size: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """The astronaut pasted onto a grey canvas, so the face sits where a centre crop fails."""
    canvas = np.full((size[1], size[0], 3), 128, np.uint8)
    x, y = at
    canvas[y : y + 512, x : x + 512] = data.astronaut()
    return canvas


@pytest.fixture(scope="module")
def astronaut_png() -> bytes:
    return _png(data.astronaut())


@pytest.fixture(scope="module")
def astronaut_set(astronaut_png: bytes) -> RenderSet:
    return render_set(astronaut_png, ALL_FORMATS)


# --- formats and sizes ---------------------------------------------------------------------


def test_every_format_comes_out_at_its_instagram_size(astronaut_set: RenderSet) -> None:
    sizes = {r.format: (r.width, r.height) for r in astronaut_set.renditions}
    assert sizes == FORMATS
    for rendition in astronaut_set.renditions:
        assert _reopen(rendition).size == FORMATS[rendition.format]


def test_every_rendition_is_between_320_and_1440_px_wide(astronaut_set: RenderSet) -> None:
    assert all(320 <= _reopen(r).width <= 1440 for r in astronaut_set.renditions)


def test_thumbnail_is_300_px_wide_and_framed_like_the_first_format(
    astronaut_set: RenderSet,
) -> None:
    thumbnail = astronaut_set.thumbnail
    assert (thumbnail.width, _reopen(thumbnail).width) == (300, 300)
    assert thumbnail.crop == astronaut_set.renditions[0].crop


def test_plain_thumbnail_keeps_the_whole_source_300_px_wide() -> None:
    source = _png(Image.new("RGB", (800, 400), (20, 90, 200)))
    thumbnail = render_thumbnail(source)
    assert (thumbnail.width, thumbnail.height) == (300, 150)
    assert _reopen(thumbnail).size == (300, 150)


def test_thumbnail_can_be_framed_like_a_given_format(astronaut_png: bytes) -> None:
    thumbnail = render_thumbnail(astronaut_png, fmt="story")
    assert (thumbnail.width, thumbnail.height) == (300, 533)
    assert _crop(thumbnail).contains(ASTRONAUT_FACE)


def test_render_renditions_keeps_the_requested_order(astronaut_png: bytes) -> None:
    out = render_renditions(astronaut_png, ["story", "feed_square"])
    assert [r.format for r in out] == ["story", "feed_square"]


# --- subject-aware framing -----------------------------------------------------------------


def test_the_astronauts_face_is_detected_where_opencv_finds_it() -> None:
    faces = detect_faces(data.astronaut())
    assert len(faces) == 1
    found = faces[0]
    assert abs(found.left - ASTRONAUT_FACE.left) <= 12 and abs(found.top - ASTRONAUT_FACE.top) <= 12
    assert found.contains(Box(ASTRONAUT_FACE.left + 12, ASTRONAUT_FACE.top + 12, 70, 70))


def test_face_stays_fully_inside_every_crop_of_a_real_photograph(astronaut_set: RenderSet) -> None:
    assert len(astronaut_set.faces) == 1
    for rendition in [*astronaut_set.renditions, astronaut_set.thumbnail]:
        assert _crop(rendition).contains(ASTRONAUT_FACE), rendition.format


@pytest.mark.parametrize(
    ("canvas", "at"),
    [((1000, 560), (10, 24)), ((1000, 560), (478, 24)), ((560, 1000), (24, 488))],
    ids=["face-near-left-edge", "face-near-right-edge", "face-near-bottom"],
)
def test_face_near_an_edge_stays_inside_every_crop(
    canvas: tuple[int, int], at: tuple[int, int]
) -> None:
    face = _shifted(ASTRONAUT_FACE, *at)
    result = render_set(_png(_on_canvas(canvas, at)), ALL_FORMATS)
    for rendition in result.renditions:
        assert _crop(rendition).contains(face), rendition.format


def test_a_crop_that_cannot_hold_two_faces_cuts_through_neither() -> None:
    strip = data.astronaut()[:, 100:360]  # one face, 95 px wide, in a 260 px strip
    two = np.ascontiguousarray(np.concatenate([strip, strip], axis=1))
    faces = [_shifted(ASTRONAUT_FACE, -100, 0), _shifted(ASTRONAUT_FACE, 160, 0)]
    story = render_renditions(_png(two), ["story"])[0]
    crop = _crop(story)
    inside = [crop.contains(face) for face in faces]
    disjoint = [face.right <= crop.left or face.left >= crop.right for face in faces]
    assert all(i or d for i, d in zip(inside, disjoint, strict=True))
    assert any(inside)


def test_without_a_face_the_crop_follows_the_salient_subject() -> None:
    rng = np.random.default_rng(7)
    ramp = np.linspace(90, 150, 1024)[None, :, None].repeat(768, 0).repeat(3, 2)
    noisy = np.clip(ramp + rng.normal(0, 6, ramp.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(noisy)
    ImageDraw.Draw(image).ellipse((810, 260, 890, 340), fill=(220, 30, 30))
    for rendition in render_renditions(_png(image), ["story", "feed_portrait"]):
        assert _crop(rendition).contains(Box(810, 260, 80, 80)), rendition.format


def test_a_source_already_at_the_format_ratio_is_not_cropped() -> None:
    source = _png(Image.new("RGB", (896, 1120), (200, 180, 160)))
    (portrait,) = render_renditions(source, ["feed_portrait"])
    assert portrait.crop == (0, 0, 896, 1120)


def test_exif_orientation_is_applied_before_framing() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    source = _jpeg(Image.new("RGB", (640, 480), (90, 120, 150)), exif=exif)
    thumbnail = render_thumbnail(source)
    assert (thumbnail.width, thumbnail.height) == (300, 400)


# --- JPEG properties -----------------------------------------------------------------------


def test_output_is_a_single_frame_jpeg_never_mpo(astronaut_set: RenderSet) -> None:
    for rendition in [*astronaut_set.renditions, astronaut_set.thumbnail]:
        image = _reopen(rendition)
        assert image.format == "JPEG"
        assert getattr(image, "n_frames", 1) == 1
        assert b"MPF\x00" not in rendition.data
        assert rendition.content_type == "image/jpeg"


def test_multi_picture_source_becomes_a_single_jpeg() -> None:
    left = Image.fromarray(data.astronaut())
    buf = io.BytesIO()
    left.save(
        buf, "MPO", save_all=True, append_images=[left.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    )
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    for rendition in render_renditions(buf.getvalue(), ["feed_square", "story"]):
        image = _reopen(rendition)
        assert image.format == "JPEG" and getattr(image, "n_frames", 1) == 1


def test_output_is_srgb_with_an_embedded_icc_profile(astronaut_set: RenderSet) -> None:
    for rendition in astronaut_set.renditions:
        icc = _reopen(rendition).info["icc_profile"]
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        assert "sRGB" in ImageCms.getProfileDescription(profile)
        assert profile.profile.xcolor_space == "RGB "
        assert icc == srgb_icc()


def test_output_has_no_exif_even_when_the_source_carried_gps() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)  # GPSLatitude
    source = _jpeg(Image.fromarray(data.astronaut()), exif=exif, comment=b"shot at home")
    assert Image.open(io.BytesIO(source)).getexif()
    for rendition in render_renditions(source, ALL_FORMATS):
        image = _reopen(rendition)
        assert "exif" not in image.info and not image.getexif()
        assert "comment" not in image.info
        assert b"Exif\x00\x00" not in rendition.data and b"PhoneMaker" not in rendition.data


def test_output_carries_the_iptc_trained_algorithmic_media_xmp(astronaut_set: RenderSet) -> None:
    for rendition in [*astronaut_set.renditions, astronaut_set.thumbnail]:
        xmp = _reopen(rendition).info["xmp"]
        assert DIGITAL_SOURCE_TYPE.encode() in xmp
        assert b"Iptc4xmpExt:DigitalSourceType" in xmp


def test_output_is_under_8_mib(astronaut_set: RenderSet) -> None:
    assert all(len(r.data) < 8 * 1024 * 1024 for r in astronaut_set.renditions)


def test_same_source_gives_the_same_bytes(astronaut_png: bytes, astronaut_set: RenderSet) -> None:
    again = render_set(astronaut_png, ALL_FORMATS)
    assert [r.data for r in again.renditions] == [r.data for r in astronaut_set.renditions]
    assert again.thumbnail.data == astronaut_set.thumbnail.data


def test_same_source_gives_the_same_bytes_in_another_process(astronaut_png: bytes) -> None:
    script = (
        "import hashlib, sys\n"
        "from pipeline.media.renditions import FORMATS, render_set\n"
        "result = render_set(sys.stdin.buffer.read(), list(FORMATS))\n"
        "parts = [r.data for r in result.renditions] + [result.thumbnail.data]\n"
        "print(hashlib.sha256(b''.join(parts)).hexdigest())\n"
    )
    here = render_set(astronaut_png, ALL_FORMATS)
    expected = hashlib.sha256(
        b"".join([r.data for r in here.renditions] + [here.thumbnail.data])
    ).hexdigest()
    done = subprocess.run(
        [sys.executable, "-c", script], input=astronaut_png, capture_output=True, check=True
    )
    assert done.stdout.decode().strip() == expected


def test_quality_is_lowered_step_by_step_until_the_jpeg_fits() -> None:
    noise = np.random.default_rng(3).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    source = _png(noise)
    (first,) = render_renditions(source, ["feed_square"])
    (smaller,) = render_renditions(source, ["feed_square"], max_bytes=len(first.data) - 1)
    assert first.quality == 90
    assert smaller.quality < 90 and len(smaller.data) < len(first.data)


def test_a_rendition_that_cannot_fit_even_at_the_lowest_quality_is_an_error(
    astronaut_png: bytes,
) -> None:
    with pytest.raises(RenderError, match=r"feed_square rendition is .* bytes .* over the 1,000"):
        render_renditions(astronaut_png, ["feed_square"], max_bytes=1000)


# --- carousels -----------------------------------------------------------------------------


def test_carousel_items_all_take_the_first_images_ratio(astronaut_png: bytes) -> None:
    portraitish = _png(Image.new("RGB", (800, 1000), (10, 120, 90)))
    items = render_carousel([portraitish, astronaut_png, _png(_on_canvas((1000, 560), (10, 24)))])
    assert {(r.format, r.width, r.height) for r in items} == {("feed_portrait", 1080, 1350)}
    assert [r.item for r in items] == [1, 2, 3]
    assert len({r.name for r in items}) == 3


def test_carousel_face_stays_inside_each_items_crop() -> None:
    items = render_carousel([_png(_on_canvas((1000, 560), at)) for at in [(10, 24), (478, 24)]])
    assert nearest_feed_format(1000, 560) == items[0].format == "feed_landscape"
    for item, at in zip(items, [(10, 24), (478, 24)], strict=True):
        assert _crop(item).contains(_shifted(ASTRONAUT_FACE, *at))


@pytest.mark.parametrize("count", [0, 1, 11])
def test_carousel_needs_two_to_ten_images(astronaut_png: bytes, count: int) -> None:
    with pytest.raises(RenderError, match=f"2-10 images, got {count}"):
        render_carousel([astronaut_png] * count)


def test_carousel_refuses_the_story_format(astronaut_png: bytes) -> None:
    with pytest.raises(RenderError, match="'story' is not a feed format"):
        render_carousel([astronaut_png] * 2, "story")


def test_carousel_error_names_the_broken_item(astronaut_png: bytes) -> None:
    with pytest.raises(RenderError, match=r"^carousel item 2: source is not an image"):
        render_carousel([astronaut_png, b"garbage", astronaut_png])


# --- bad input -----------------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header and holds almost no data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


BAD_SOURCES = {
    "empty": (b"", "empty"),
    "not-an-image": (b"%PDF-1.7 definitely not a picture", "not an image"),
    "truncated-jpeg": (_truncated(_jpeg(Image.fromarray(data.astronaut()))), "corrupt"),
    "truncated-png": (_truncated(_png(data.astronaut())), "corrupt or truncated"),
    "too-small": (_png(Image.new("RGB", (319, 600))), "at least 320 px"),
    "bomb": (_png_header(30000, 30000), "too large to decode safely|pixel limit"),
    "over-our-limit": (_png_header(10000, 6000), "over the 50,000,000-pixel limit"),
}


@pytest.mark.parametrize("name", list(BAD_SOURCES))
def test_bad_source_is_one_clear_render_error_line(name: str) -> None:
    source, expected = BAD_SOURCES[name]
    with pytest.raises(RenderError, match=expected) as caught:
        render_set(source, ALL_FORMATS)
    assert "\n" not in str(caught.value)


def test_decompression_bomb_is_refused_from_the_header_before_decoding() -> None:
    # 900 MP claimed in ~100 bytes: decoding would exhaust memory, so only the header is read.
    with pytest.raises(RenderError, match=r"too large to decode safely|pixel limit"):
        render_renditions(_png_header(30000, 30000), ["feed_square"], max_pixels=10**12)


def test_unknown_format_name_is_one_clear_line_naming_the_value_and_the_choices(
    astronaut_png: bytes,
) -> None:
    with pytest.raises(RenderError) as caught:
        render_renditions(astronaut_png, ["feed_square", "reel_vertical"])
    message = str(caught.value)
    assert "'reel_vertical'" in message and "feed_portrait" in message and "\n" not in message


@pytest.mark.parametrize(
    ("formats", "expected"),
    [([], "no rendition format"), (["story", "story"], "'story' is requested twice")],
)
def test_empty_or_repeated_format_lists_are_refused(
    astronaut_png: bytes, formats: list[str], expected: str
) -> None:
    with pytest.raises(RenderError, match=expected):
        render_set(astronaut_png, formats)


def test_a_failed_render_writes_nothing_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RenderError):
        render_set(_truncated(_png(data.astronaut())), ALL_FORMATS)
    assert list(tmp_path.iterdir()) == []
