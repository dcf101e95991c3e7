"""Colour in and JPEG out: sources made 8-bit sRGB, encoded for Instagram with ICC and AI XMP.

No EXIF, no comment, one baseline frame (never MPO); the same pixels always give the same bytes.
"""

from __future__ import annotations

import io
import struct
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageCms

__all__ = [
    "AI_XMP",
    "DIGITAL_SOURCE_TYPE",
    "ColourError",
    "encode_jpeg",
    "plain_png_size",
    "srgb_icc",
    "to_srgb",
]

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

# The IPTC field Meta reads to apply its "AI info" label; a fixed packet keeps bytes stable.
AI_XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""\n'
    '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
    f'    Iptc4xmpExt:DigitalSourceType="{DIGITAL_SOURCE_TYPE}"/>\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="r"?>'
).encode()

_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_PROFILE_MODES = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}
_SRGB_NAMES = frozenset({"sRGB IEC61966-2.1", "sRGB built-in", "sRGB"})
_WHITE = (255, 255, 255)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that change no pixel: anything else (iCCP, gAMA, cHRM, sRGB, cICP, tRNS, PLTE, eXIf,
# APNG frames, chunks we do not know) sends a PNG through Pillow and to_srgb.
_PNG_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_PLAIN_PNG_CHUNKS = frozenset({b"IDAT", b"pHYs", b"tIME"}) | _PNG_TEXT_CHUNKS
# Text keywords Pillow reads an orientation from (EXIF or XMP), which exif_transpose applies.
_ORIENTING_TEXT = (b"Raw profile type", b"XML:com.adobe.xmp")
_RGB_8_BIT = (8, 2, 0, 0, 0)  # IHDR: bit depth, colour type RGB, compression, filter, interlace
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_ICC_HEADER = b"ICC_PROFILE\x00\x01\x01"  # chunk 1 of 1: the sRGB profile fits one segment


class ColourError(ValueError):
    """The source's colour data cannot be turned into sRGB (odd mode, unusable ICC profile)."""


@cache
def srgb_icc() -> bytes:
    """LittleCMS's built-in sRGB profile with a fixed creation date, so output bytes never vary."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    # ICC header bytes 24-35 hold the creation time; LittleCMS stamps "now" there.
    data[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
    return bytes(data)


@cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(srgb_icc()))


def to_srgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB image in sRGB; transparency is flattened onto white, as Instagram shows it."""
    icc = image.info.get("icc_profile")
    colour, alpha = _split_alpha(_to_8bit(image))
    rgb = _apply_profile(colour, icc)
    if alpha is not None:
        rgb = Image.composite(rgb, Image.new("RGB", rgb.size, _WHITE), alpha)
    return rgb


def plain_png_size(source: bytes) -> tuple[int, int] | None:
    """(width, height) of a whole 8-bit RGB PNG whose chunks cannot change its colours or its
    orientation, so any decoder gives the pixels to_srgb would; None for anything else."""
    if not source.startswith(_PNG_SIGNATURE):
        return None
    chunks = _png_chunks(source)
    if len(chunks) < 3 or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        return None
    if not all(_is_plain_chunk(kind, data) for kind, data in chunks[1:-1]):
        return None
    header = chunks[0][1]
    if len(header) != 13 or struct.unpack(">5B", header[8:]) != _RGB_8_BIT:
        return None
    width, height = struct.unpack(">2I", header[:8])
    return width, height


def _png_chunks(source: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk up to IEND as (type, data); stops early, without IEND, on a truncated file."""
    chunks, pos = [], len(_PNG_SIGNATURE)
    while pos + 12 <= len(source):
        length, kind = struct.unpack_from(">I4s", source, pos)
        end = pos + 12 + length
        if end > len(source):
            break
        chunks.append((kind, source[pos + 8 : end - 4] if kind != b"IDAT" else b""))
        if kind == b"IEND":
            break
        pos = end
    return chunks


def _is_plain_chunk(kind: bytes, data: bytes) -> bool:
    if kind not in _PLAIN_PNG_CHUNKS:
        return False
    keyword = data.split(b"\x00", 1)[0] if kind in _PNG_TEXT_CHUNKS else b""
    return not keyword.startswith(_ORIENTING_TEXT)


def encode_jpeg(pixels: np.ndarray, *, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0, from an sRGB BGR array (OpenCV's order), with the sRGB profile and
    the AI XMP; nothing else is written."""
    import cv2  # imported here: the CLI and API never pay for OpenCV

    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ColourError(
            f"encode_jpeg needs 8-bit BGR pixels, got {pixels.dtype} {pixels.shape}: "
            "decode through load_pixels"
        )
    # Standard Huffman tables: optimised ones save ~2 % of bytes but double the encoding time.
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 0]
    params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, encoded = cv2.imencode(".jpg", pixels, params)
    if not ok:
        raise ColourError(f"OpenCV could not encode a {pixels.shape[1]}x{pixels.shape[0]} JPEG")
    return _with_metadata(encoded.tobytes())


def _with_metadata(jpeg: bytes) -> bytes:
    # JFIF's APP0 must stay the first segment; the XMP and ICC segments go right after it.
    end = 2
    if jpeg[2:4] == b"\xff\xe0":
        end = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:end] + _metadata_segments() + jpeg[end:]


@cache
def _metadata_segments() -> bytes:
    return _segment(0xE1, _XMP_HEADER + AI_XMP) + _segment(0xE2, _ICC_HEADER + srgb_icc())


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in _SIXTEEN_BIT:
        # Scale (not clip) 0-65535 to 0-255; Pillow versions disagree on what convert("L") does.
        wide = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")
    if image.mode == "F":
        raise ColourError("source is a 32-bit float image: export it as 8- or 16-bit")
    if image.mode == "1":
        return image.convert("L")
    return image


def _split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """The colour bands (RGB, L or CMYK) and the alpha band, or None when fully opaque."""
    mode = image.mode
    if mode == "P" or "transparency" in image.info:
        has_alpha = image.has_transparency_data
        mode = ("LA" if mode == "L" else "RGBA") if has_alpha else ("L" if mode == "L" else "RGB")
        image = image.convert(mode)
    elif mode in ("PA", "RGBa", "La"):
        image = image.convert("LA" if mode == "La" else "RGBA")
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
        colour = image.convert(image.mode[:-1])
        return colour, (None if alpha.getextrema() == (255, 255) else alpha)
    if image.mode in ("RGB", "L", "CMYK"):
        return image, None
    try:
        return image.convert("RGB"), None
    except ValueError as exc:
        raise ColourError(f"source colour mode {image.mode!r} is not supported ({exc})") from exc


def _apply_profile(image: Image.Image, icc: bytes | None) -> Image.Image:
    transform = _transform_from(icc, image.mode) if icc and icc != srgb_icc() else None
    if transform is not None:
        return transform.apply(image)
    # No profile means sRGB, as browsers and Instagram assume; RGB needs no copy.
    return image if image.mode == "RGB" else image.convert("RGB")


@lru_cache(maxsize=16)
def _transform_from(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """One LittleCMS transform per (profile, mode); building one costs more than applying it."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile).strip()
    except (OSError, ImageCms.PyCMSError) as exc:
        raise ColourError(f"source's ICC profile is unreadable ({exc}): re-export as sRGB") from exc
    space = profile.profile.xcolor_space.strip()
    if _PROFILE_MODES.get(space) != mode:
        raise ColourError(
            f"source's ICC profile is for {space!r} but the pixels are {mode!r}: re-export as sRGB"
        )
    if description in _SRGB_NAMES:
        return None
    return ImageCms.buildTransform(
        profile,
        _srgb_profile(),
        mode,
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )
