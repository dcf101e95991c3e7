"""Subject-aware crops: find faces (OpenCV Haar cascade), else a salient point, and place crops.

A crop of another aspect ratio never cuts through a detected face that could fit inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np

__all__ = [
    "Box",
    "ChannelOrder",
    "Framing",
    "FramingUnavailable",
    "crop_box",
    "detect_faces",
    "find_subject",
    "resize_array",
    "salient_point",
]


@dataclass(frozen=True)
class _Pass:
    side: int  # the grey copy's longest side
    scale_factor: float
    min_neighbours: int
    min_face: int  # in pixels of the grey copy; the cascade's own window is 24
    max_face: int = 0  # 0: no limit


# A quick coarse pass finds the large faces of portraits (>= 12.5 % of the longest side); only
# when it finds none does a fine pass look for faces down to 7.5 % (24 px of 320). The fine
# pass stops at 17.5 % (56 px): that overlap still catches the large faces the coarse pass's
# big scale steps miss, while windows above it found no further face in our trials (faces
# pasted at 7.5-20 % on many backgrounds), only false ones, and cost ~40 % more time.
_PASSES = (_Pass(288, 1.25, 4, 36), _Pass(320, 1.1, 4, 24, max_face=56))
_DETAIL_SIDE = max(p.side for p in _PASSES)
# Head and shoulders around a face box, as fractions of its size: kept inside when room allows.
_HEAD_MARGIN = (0.35, 0.6, 0.35, 0.5)  # left, top, right, bottom
# With a face, rows put it ~40 % down the crop (headroom); columns centre it.
_FACE_ROW_POSITION = 0.4


ChannelOrder = Literal["RGB", "BGR"]


class FramingUnavailable(RuntimeError):
    """The installed OpenCV has no Haar face cascade (OpenCV 5 dropped them)."""


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    def contains(self, other: Box) -> bool:
        return (
            self.left <= other.left
            and self.top <= other.top
            and other.right <= self.right
            and other.bottom <= self.bottom
        )

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.width, self.height)


@dataclass(frozen=True)
class Framing:
    """What one source image holds: its size, its faces, and where the eye goes without any."""

    width: int
    height: int
    faces: tuple[Box, ...]
    focus: tuple[float, float]  # x, y in source pixels


@cache
def _cascade() -> Any:
    import cv2  # imported here: the CLI and API never pay for OpenCV

    if not hasattr(cv2, "CascadeClassifier"):
        raise FramingUnavailable(
            f"OpenCV {cv2.__version__} has no CascadeClassifier: "
            "install opencv-python-headless>=4.10,<5"
        )
    import cv2.data  # the cascade files ship inside the wheel, so framing works offline

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise FramingUnavailable("OpenCV's frontal-face Haar cascade file is missing")
    return cascade


def resize_array(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (width, height): cubic up or slightly down, area-averaged when shrinking more.

    OpenCV's area filter is fast only at whole-number ratios, so a shrink of up to 4x goes
    bilinear to twice the target first and then averages exactly 2:1 (~5x faster, same look).
    """
    import cv2

    factor = pixels.shape[1] / size[0]
    if factor <= 1.25:
        return cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC)
    if factor <= 4:
        double = (size[0] * 2, size[1] * 2)
        pixels = cv2.resize(pixels, double, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def _grey(pixels: np.ndarray, order: ChannelOrder) -> np.ndarray:
    import cv2

    code = cv2.COLOR_BGR2GRAY if order == "BGR" else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(pixels, code)


def _reduce(grey: np.ndarray, side: int) -> np.ndarray:
    """Shrunk by the largest whole factor that keeps the long side at least ``side`` px.

    OpenCV's area filter is several times faster at whole-number ratios, and every small copy
    framing needs (each detection pass, the saliency map) is then cheap to make from this one.
    """
    import cv2

    factor = min(max(grey.shape) // side, min(grey.shape))
    if factor < 2:
        return grey
    height, width = (n // factor for n in grey.shape)
    # Drops under `factor` px at the far edges: boxes scaled back can be off by as much there.
    whole = grey[: height * factor, : width * factor]
    return cv2.resize(whole, (width, height), interpolation=cv2.INTER_AREA)


def _shrink(reduced: np.ndarray, full: tuple[int, int], side: int) -> tuple[np.ndarray, float]:
    """A grey copy of the ``full`` (width, height) source at ``side`` px long, and its scale."""
    import cv2

    scale = min(1.0, side / max(full))
    size = (max(1, round(full[0] * scale)), max(1, round(full[1] * scale)))
    if size == (reduced.shape[1], reduced.shape[0]):
        return reduced, scale
    return cv2.resize(reduced, size, interpolation=cv2.INTER_AREA), scale


def detect_faces(pixels: np.ndarray, *, order: ChannelOrder = "RGB") -> tuple[Box, ...]:
    """Frontal faces in an RGB (or BGR) array, in its own pixels, largest first."""
    height, width = pixels.shape[:2]
    return _detect(_reduce(_grey(pixels, order), _DETAIL_SIDE), (width, height))


def _detect(reduced: np.ndarray, full: tuple[int, int]) -> tuple[Box, ...]:
    for settings in _PASSES:
        small, scale = _shrink(reduced, full, settings.side)
        found = _cascade().detectMultiScale(
            small,
            settings.scale_factor,
            settings.min_neighbours,
            minSize=(settings.min_face, settings.min_face),
            maxSize=(settings.max_face, settings.max_face),
        )
        if len(found):
            boxes = [_scale_up(tuple(int(v) for v in f), scale, full) for f in found]
            return tuple(sorted(boxes, key=lambda b: (-b.width * b.height, b.left, b.top)))
    return ()


def _scale_up(face: tuple[int, ...], scale: float, full: tuple[int, int]) -> Box:
    # Round outwards so the box in source pixels still covers the whole detected face.
    x, y, w, h = face
    left, top = math.floor(x / scale), math.floor(y / scale)
    right = min(full[0], math.ceil((x + w) / scale))
    bottom = min(full[1], math.ceil((y + h) / scale))
    return Box(left, top, right - left, bottom - top)


def salient_point(pixels: np.ndarray, *, order: ChannelOrder = "RGB") -> tuple[float, float]:
    """Spectral-residual saliency weighted towards the centre; (x, y) in the array's pixels."""
    height, width = pixels.shape[:2]
    return _salient(_reduce(_grey(pixels, order), _DETAIL_SIDE), (width, height))


def _salient(reduced: np.ndarray, full: tuple[int, int]) -> tuple[float, float]:
    import cv2

    small = cv2.resize(reduced, (64, 64), interpolation=cv2.INTER_AREA)
    weight = _saliency_map(small)
    peak = float(weight.max())
    if not np.isfinite(peak) or peak <= 0:
        return full[0] / 2, full[1] / 2
    # The centroid of the strongest region only: texture spread everywhere must not dilute it.
    weight = np.where(weight >= 0.5 * peak, weight, 0.0)
    total = float(weight.sum())
    centres = (np.arange(64) + 0.5) / 64
    fx = float((weight.sum(axis=0) * centres).sum() / total)
    fy = float((weight.sum(axis=1) * centres).sum() / total)
    return fx * full[0], fy * full[1]


def _saliency_map(small: np.ndarray) -> np.ndarray:
    import cv2

    spectrum = np.fft.fft2(small.astype(np.float64))
    log_amplitude = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3))
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = cv2.GaussianBlur(saliency, (9, 9), 2.5)
    # A wide centre prior breaks ties between busy edges and the middle of the picture.
    axis = (np.arange(64) + 0.5) / 64 - 0.5
    prior = np.exp(-(axis[None, :] ** 2 + axis[:, None] ** 2) / (2 * 0.35**2))
    return np.asarray(saliency * prior)


def find_subject(pixels: np.ndarray, *, order: ChannelOrder = "RGB") -> Framing:
    """Faces first; the salient point is the fallback focus when there are none."""
    height, width = pixels.shape[:2]
    reduced = _reduce(_grey(pixels, order), _DETAIL_SIDE)
    faces = _detect(reduced, (width, height))
    if faces:
        main = faces[0]
        focus = (main.left + main.width / 2, main.top + main.height / 2)
    else:
        focus = _salient(reduced, (width, height))
    return Framing(width=width, height=height, faces=faces, focus=focus)


def crop_box(framing: Framing, ratio: float) -> Box:
    """The largest crop of ``ratio`` (width / height) that keeps the subject and cuts no face."""
    width, height = framing.width, framing.height
    if width / height > ratio:  # too wide: choose columns
        length = min(width, max(1, round(height * ratio)))
        start = _place_on_axis(framing, length, width, vertical=False)
        return Box(start, 0, length, height)
    length = min(height, max(1, round(width / ratio)))
    start = _place_on_axis(framing, length, height, vertical=True)
    return Box(0, start, width, length)


def _spans(
    faces: tuple[Box, ...], vertical: bool, extent: int, margin: bool
) -> list[tuple[int, int]]:
    spans = []
    for face in faces:
        lo, hi, size = (
            (face.top, face.bottom, face.height)
            if vertical
            else (face.left, face.right, face.width)
        )
        if margin:
            before, after = (_HEAD_MARGIN[1], _HEAD_MARGIN[3]) if vertical else _HEAD_MARGIN[::2]
            lo, hi = max(0, lo - round(before * size)), min(extent, hi + round(after * size))
        spans.append((lo, hi))
    return spans


def _place_on_axis(framing: Framing, length: int, extent: int, *, vertical: bool) -> int:
    """Start of the crop along one axis: no fitting face cut, most face area kept, then nearest
    to where the subject wants it."""
    faces = _spans(framing.faces, vertical, extent, margin=False)
    heads = _spans(framing.faces, vertical, extent, margin=True)
    wanted = _wanted_start(framing, faces, length, vertical)
    limit = extent - length
    candidates = {wanted, 0, limit}
    for lo, hi in faces + heads:
        candidates.update((lo, hi, lo - length, hi - length))
    best = min(
        (c for c in candidates if 0 <= c <= limit),
        key=lambda c: (
            _cuts(c, length, faces),
            -_kept(c, length, faces),
            _cuts(c, length, heads),
            abs(c - wanted),
            c,
        ),
    )
    return best


def _wanted_start(
    framing: Framing, faces: list[tuple[int, int]], length: int, vertical: bool
) -> int:
    fitting = [(lo, hi) for lo, hi in faces if hi - lo <= length]
    if fitting:
        lo = min(s[0] for s in fitting)
        hi = max(s[1] for s in fitting)
        if hi - lo > length:  # not all fit together: aim at the largest face
            lo, hi = fitting[0]
        centre = (lo + hi) / 2
    elif faces:  # a face larger than the crop: centre on it rather than drop the person
        centre = (faces[0][0] + faces[0][1]) / 2
    else:
        centre = framing.focus[1] if vertical else framing.focus[0]
    position = _FACE_ROW_POSITION if vertical and faces else 0.5
    extent = framing.height if vertical else framing.width
    return min(max(0, round(centre - position * length)), extent - length)


def _cuts(start: int, length: int, spans: list[tuple[int, int]]) -> int:
    """How many spans the window [start, start + length) cuts through (neither in nor out)."""
    end = start + length
    return sum(
        1
        for lo, hi in spans
        if hi - lo <= length and lo < end and hi > start and not (start <= lo and hi <= end)
    )


def _kept(start: int, length: int, spans: list[tuple[int, int]]) -> int:
    end = start + length
    return sum(hi - lo for lo, hi in spans if start <= lo and hi <= end)
