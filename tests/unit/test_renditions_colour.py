"""Rendition colour: CMYK, 16-bit, palette, alpha, grey and ICC-tagged sources all leave as sRGB.

Test ICC profiles are written byte by byte here, so no profile file needs to ship with the tests.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from pipeline.renditions import RenderError, render_renditions

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
