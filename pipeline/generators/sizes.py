"""The native generation size for each Instagram format: about one megapixel, right aspect.

Multiples of 16 (one transformer token per 16x16 pixels), so renditions need no destructive crop.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.errors import RenderError

__all__ = ["NATIVE_SIZES", "native_size"]

# format -> (width, height); ratio error against the target format is under 1 %.
NATIVE_SIZES: dict[str, tuple[int, int]] = {
    "feed_square": (1024, 1024),  # 1:1
    "feed_portrait": (896, 1120),  # 4:5 exactly, 1.00 MP
    "feed_landscape": (1408, 736),  # 1.913:1 against 1.908:1
    "story": (768, 1360),  # 0.565 against 9:16 = 0.5625
}


def native_size(formats: Sequence[str]) -> tuple[int, int]:
    """Generate at the first format's shape: carousels share it, the rest crop from it."""
    if not formats:
        return NATIVE_SIZES["feed_portrait"]
    try:
        return NATIVE_SIZES[formats[0]]
    except KeyError:
        raise RenderError(
            f"unknown format {formats[0]!r}: choose from {', '.join(NATIVE_SIZES)}"
        ) from None
