"""JPEG for Instagram: any Pillow colour mode made sRGB, then encoded with ICC and AI-source XMP.

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


def encode_jpeg(image: Image.Image, *, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0, with the sRGB profile and the AI XMP; nothing else is written."""
    if image.mode != "RGB":
        raise ColourError(f"encode_jpeg needs an RGB image, got mode {image.mode!r}: call to_srgb")
    buf = io.BytesIO()
    image.save(
        buf, "JPEG", quality=quality, subsampling="4:2:0", icc_profile=srgb_icc(), xmp=AI_XMP
    )
    return buf.getvalue()


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
