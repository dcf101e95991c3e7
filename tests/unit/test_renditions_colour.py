"""Rendition colour: CMYK, 16-bit, palette, alpha, grey and ICC-tagged sources all leave as sRGB.

Test ICC profiles are written byte by byte here, so no profile file needs to ship with the tests.
Plain PNGs skip Pillow for OpenCV's faster decoder; the last tests pin down which ones may.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from skimage import data

from pipeline.errors import RenderError
from pipeline.media.jpeg import plain_png_size
from pipeline.media.renditions import render_renditions, render_set, render_thumbnail

D50 = (0.9642, 1.0, 0.8249)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _centre_pixel(source: bytes) -> tuple[int, ...]:
    (square,) = render_renditions(source, ["feed_square"])
    return tuple(Image.open(io.BytesIO(square.data)).getpixel((540, 540)))  # type: ignore[arg-type]


def _near(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def test_cmyk_source_is_converted_to_rgb() -> None:
    cyan = Image.new("CMYK", (600, 600), (255, 0, 0, 0))
    assert _near(_centre_pixel(_jpeg(cyan)), (0, 255, 255))


def test_sixteen_bit_greyscale_source_keeps_its_tones() -> None:
    grey16 = Image.fromarray(np.full((600, 600), 32896, np.uint16))  # 128 * 257
    assert grey16.mode.startswith("I;16")
    assert _near(_centre_pixel(_png(grey16)), (128, 128, 128), tolerance=2)


def test_greyscale_source_becomes_rgb() -> None:
    assert _near(_centre_pixel(_png(Image.new("L", (600, 600), 77))), (77, 77, 77), tolerance=2)


def test_palette_source_with_transparency_is_flattened_onto_white() -> None:
    image = Image.new("P", (600, 600), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    image.info["transparency"] = 1
    assert _near(_centre_pixel(_png(image)), (255, 255, 255), tolerance=2)


def test_half_transparent_source_is_blended_onto_white() -> None:
    image = Image.new("RGBA", (600, 600), (0, 0, 255, 128))
    assert _near(_centre_pixel(_png(image)), (127, 127, 255), tolerance=4)


def _icc(space: str, tags: list[tuple[str, bytes]]) -> bytes:
    """A minimal ICC v2 display profile: enough for LittleCMS, written out field by field."""
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, payload in tags:
        payload += b"\0" * (-len(payload) % 4)
        table += signature.encode() + struct.pack(">II", offset + len(body), len(payload))
        body += payload
    header = (
        struct.pack(">I4sI", offset + len(body), b"\0" * 4, 0x02100000)
        + b"mntr"
        + space.encode()
        + b"XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + b"".join(struct.pack(">i", round(v * 65536)) for v in D50)
        + b"\0" * 48
    )
    return header + struct.pack(">I", len(tags)) + table + body


def _xyz(values: tuple[float, ...]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _gamma(value: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(value * 256))


def _desc(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * 78


def test_source_in_another_icc_profile_is_converted_to_srgb() -> None:
    srgb_red, srgb_green = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971)
    swapped = _icc(
        "RGB ",
        [("desc", _desc("red and green swapped")), ("wtpt", _xyz(D50)),
         ("rXYZ", _xyz(srgb_green)), ("gXYZ", _xyz(srgb_red)),
         ("bXYZ", _xyz((0.1431, 0.0606, 0.7141))),
         ("rTRC", _gamma(2.2)), ("gTRC", _gamma(2.2)), ("bTRC", _gamma(2.2))],
    )  # fmt: skip
    source = _png(Image.new("RGB", (600, 600), (255, 0, 0)))
    tagged = Image.open(io.BytesIO(source))
    buf = io.BytesIO()
    tagged.save(buf, "PNG", icc_profile=swapped)
    # The profile says the first channel is green: the pixel must come out green.
    assert _near(_centre_pixel(buf.getvalue()), (0, 255, 0))


def test_greyscale_source_with_a_linear_grey_profile_is_converted() -> None:
    linear = _icc("GRAY", [("desc", _desc("linear grey")), ("wtpt", _xyz(D50)),
                           ("kTRC", _gamma(1.0))])  # fmt: skip
    buf = io.BytesIO()
    Image.new("L", (600, 600), 128).save(buf, "PNG", icc_profile=linear)
    assert _near(_centre_pixel(buf.getvalue()), (188, 188, 188), tolerance=3)


def test_source_with_an_unusable_icc_profile_is_a_clear_error() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (600, 600)).save(buf, "PNG", icc_profile=b"not a profile at all")
    with pytest.raises(RenderError, match="ICC profile"):
        render_renditions(buf.getvalue(), ["feed_square"])


# --- the fast PNG decoder ------------------------------------------------------------------


def _png_with(image: Image.Image, **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **options)
    return buf.getvalue()


def _chunk(kind: bytes, text: str) -> PngInfo:
    info = PngInfo()
    info.add(kind, text.encode())
    return info


def _itxt(key: str, text: str) -> PngInfo:
    info = PngInfo()
    info.add_itxt(key, text)
    return info


_XMP_SIDEWAYS = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><tiff:Orientation>6</tiff:Orientation>'


def _sideways_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


_RGB = Image.new("RGB", (640, 480), (30, 60, 90))


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        (_png_with(_RGB), True),
        (_png_with(_RGB, dpi=(72, 72), pnginfo=_itxt("Comment", "a prompt")), True),
        (_png_with(_RGB, icc_profile=b"any profile"), False),
        (_png_with(_RGB, pnginfo=_chunk(b"gAMA", "\0\0\xb1\x8f")), False),
        (_png_with(_RGB, transparency=(30, 60, 90)), False),
        (_png_with(_RGB, exif=_sideways_exif()), False),
        (_png_with(_RGB, pnginfo=_itxt("XML:com.adobe.xmp", _XMP_SIDEWAYS)), False),
        (_png_with(_RGB.convert("RGBA")), False),
        (_png_with(_RGB.convert("L")), False),
        (_png_with(_RGB.convert("P")), False),
        (_png_with(_RGB)[:-20], False),
        (_jpeg(_RGB), False),
    ],
    ids=["plain", "dpi-and-text", "icc", "gamma", "transparency", "exif", "xmp", "rgba", "grey",
         "palette", "truncated", "jpeg"],
)  # fmt: skip
def test_only_whole_8_bit_rgb_pngs_with_nothing_that_changes_pixels_are_plain(
    source: bytes, plain: bool
) -> None:
    assert (plain_png_size(source) == (640, 480)) is plain


def test_plain_png_decoded_by_opencv_renders_the_same_bytes_as_through_pillow() -> None:
    astronaut = Image.fromarray(data.astronaut())
    plain = _png_with(astronaut)
    through_pillow = _png_with(astronaut, pnginfo=_chunk(b"gAMA", "\0\0\xb1\x8f"))
    assert plain_png_size(plain) and not plain_png_size(through_pillow)
    fast, slow = render_set(plain, ["story"]), render_set(through_pillow, ["story"])
    assert fast.renditions[0].data == slow.renditions[0].data
    assert fast.thumbnail.data == slow.thumbnail.data


@pytest.mark.parametrize(
    "options",
    [{"exif": _sideways_exif()}, {"pnginfo": _itxt("XML:com.adobe.xmp", _XMP_SIDEWAYS)}],
    ids=["exif-chunk", "xmp-text"],
)
def test_png_orientation_from_exif_or_xmp_is_applied(options: dict[str, Any]) -> None:
    thumbnail = render_thumbnail(_png_with(_RGB, **options))
    assert (thumbnail.width, thumbnail.height) == (300, 400)


def _png_chunk_bytes(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def test_too_little_image_data_in_a_whole_png_is_a_clear_error() -> None:
    header = struct.pack(">IIBBBBB", 640, 480, 8, 2, 0, 0, 0)
    short = zlib.compress(b"\0" * 5000)  # 480 rows of 1,921 bytes were promised
    source = b"\x89PNG\r\n\x1a\n" + b"".join(
        _png_chunk_bytes(kind, payload)
        for kind, payload in [(b"IHDR", header), (b"IDAT", short), (b"IEND", b"")]
    )
    assert plain_png_size(source) == (640, 480)  # so OpenCV is tried first
    with pytest.raises(RenderError, match="corrupt or truncated"):
        render_renditions(source, ["feed_square"])
