"""What the fake Graph API checks before it accepts a container, after Meta's documented limits.

Images are downloaded from ``image_url`` (loopback only) and checked the way Instagram does.
"""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

__all__ = [
    "MAX_IMAGE_BYTES",
    "GraphFault",
    "check_caption",
    "check_image",
    "graph_error",
]

MAX_IMAGE_BYTES = 8 * 1024 * 1024
FEED_RATIOS = (4 / 5, 1.91)  # width / height, inclusive
STORY_RATIOS = (9 / 16 - 0.01, 9 / 16 + 0.01)
MAX_CAPTION, MAX_HASHTAGS, MAX_MENTIONS = 2200, 30, 20
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_HASHTAG = re.compile(r"(?<![\w&])#\w+")
_MENTION = re.compile(r"(?<![\w.])@[\w.]+")


def graph_error(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    is_transient: bool = False,
    user_message: str | None = None,
) -> dict[str, Any]:
    """Meta's error answer shape."""
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "is_transient": is_transient,
        "fbtrace_id": "AFakeTraceId0123",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if user_message:
        error["error_user_msg"] = user_message
    return {"error": error}


@dataclass
class GraphFault(Exception):
    """An error answer, raised inside the fake and written out by its request handler."""

    status: int
    body: dict[str, Any]


def _refuse(code: int, subcode: int, message: str, *, transient: bool = False) -> GraphFault:
    return GraphFault(400, graph_error(code, message, subcode=subcode, is_transient=transient))


def check_caption(caption: str) -> None:
    if len(caption) > MAX_CAPTION:
        raise _refuse(100, 2207010, f"The caption is too long ({len(caption)} > {MAX_CAPTION}).")
    if len(_HASHTAG.findall(caption)) > MAX_HASHTAGS:
        raise _refuse(100, 2207010, f"The caption has more than {MAX_HASHTAGS} hashtags.")
    if len(_MENTION.findall(caption)) > MAX_MENTIONS:
        raise _refuse(100, 2207010, f"The caption has more than {MAX_MENTIONS} mentions.")


def check_image(url: str, *, story: bool, max_bytes: int, timeout: float) -> tuple[int, int]:
    """Download ``url`` like Instagram does and check it; returns its (width, height)."""
    data = _download(url, max_bytes=max_bytes, timeout=timeout)
    if len(data) > max_bytes:
        raise _refuse(36000, 2207004, "The image size is too large.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, size = image.format, image.size
    except (UnidentifiedImageError, OSError):
        kind, size = None, (0, 0)
    if kind != "JPEG":  # MPO (a JPEG with extra frames) is refused too
        raise _refuse(9004, 2207005, f"The image format is not supported ({kind or 'unknown'}).")
    low, high = STORY_RATIOS if story else FEED_RATIOS
    if not low - 1e-3 <= size[0] / size[1] <= high + 1e-3:
        raise _refuse(
            36003,
            2207009,
            f"The submitted image with aspect ratio ({size[0]}/{size[1]}) cannot be published.",
        )
    return size


def _download(url: str, *, max_bytes: int, timeout: float) -> bytes:
    if urlsplit(url).hostname not in _LOOPBACK:
        # The fake never leaves the machine: a remote URL is one Instagram "could not fetch".
        raise _refuse(9004, 2207052, "The media could not be fetched from this uri (not loopback).")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return bytes(answer.read(max_bytes + 1))
    except TimeoutError:
        raise _refuse(
            -2, 2207003, "It takes too long to download the media.", transient=True
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _refuse(
            9004, 2207052, f"The media could not be fetched from this uri ({exc})."
        ) from None
