"""Framing of small faces: people far from the camera are found by the fine detection pass.

The coarse pass only sees faces from 12.5 % of the long side; these faces are 8-9 %.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image
from skimage import data

from pipeline.media.framing import Box, detect_faces
from pipeline.media.renditions import FORMATS, render_set

# Where OpenCV's frontal-face cascade finds the astronaut's face in the 512x512 photograph.
ASTRONAUT_FACE = Box(177, 66, 95, 95)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _crowd(size: tuple[int, int], face: int, places: list[tuple[int, int]]) -> np.ndarray:
    """The astronaut shrunk until her face is ``face`` px wide, pasted at each place on grey."""
    width, height = size
    canvas = np.full((height, width, 3), 128, np.uint8)
    side = round(512 * face / ASTRONAUT_FACE.width)
    person = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    for x, y in places:
        canvas[y : y + side, x : x + side] = person
    return canvas


def _face_at(place: tuple[int, int], face: int) -> Box:
    scale = face / ASTRONAUT_FACE.width
    x, y = place
    return Box(x + round(177 * scale), y + round(66 * scale), face, face)


def _overlaps(a: Box, b: Box) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom


def test_a_small_face_near_the_edge_is_found_and_kept_inside_every_crop() -> None:
    face, place = 122, (20, 300)  # 9 % of the 1360 px long side
    expected = _face_at(place, face)
    found = detect_faces(_crowd((1360, 1088), face, [place]))
    assert len(found) == 1 and _overlaps(found[0], expected)
    result = render_set(_png(_crowd((1360, 1088), face, [place])), list(FORMATS))
    for rendition in [*result.renditions, result.thumbnail]:
        assert Box(*rendition.crop or ()).contains(found[0]), rendition.format


def test_two_small_faces_are_both_found_and_a_narrow_crop_cuts_neither() -> None:
    face, places = 128, [(0, 100), (910, 120)]  # 8 % of the 1600 px long side, far apart
    pixels = _crowd((1600, 900), face, places)
    found = detect_faces(pixels)
    assert len(found) == 2
    assert all(any(_overlaps(f, _face_at(p, face)) for f in found) for p in places)
    story = render_set(_png(pixels), ["story"]).renditions[0]
    crop = Box(*story.crop or ())
    inside = [crop.contains(f) for f in found]
    apart = [f.right <= crop.left or f.left >= crop.right for f in found]
    assert any(inside) and all(i or a for i, a in zip(inside, apart, strict=True))
