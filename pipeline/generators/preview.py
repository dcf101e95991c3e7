"""The preview generator: a deterministic placeholder drawn on the CPU, labelled as a preview.

For demos, planning and tests without a GPU or weights; ``auto`` never picks it silently.
"""

from __future__ import annotations

import hashlib
import random
import textwrap
import time

from PIL import Image, ImageDraw, ImageFont

from pipeline.generators.base import GeneratedImage, GenerationRequest

__all__ = ["PREVIEW_LABEL", "PreviewGenerator"]

PREVIEW_LABEL = "PREVIEW - placeholder, not a generated photo"


def _palette(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    top = tuple(rng.randrange(40, 200) for _ in range(3))
    bottom = tuple(min(255, c + rng.randrange(30, 90)) for c in top)
    return top, bottom  # type: ignore[return-value]


def _gradient(
    width: int, height: int, top: tuple[int, ...], bottom: tuple[int, ...]
) -> Image.Image:
    # A 1-pixel-wide column resized up is ~100x faster than drawing each line.
    column = Image.new("RGB", (1, 256))
    column.putdata(
        [
            tuple(int(t + (b - t) * y / 255) for t, b in zip(top, bottom, strict=True))
            for y in range(256)
        ]
    )
    return column.resize((width, height), Image.Resampling.BILINEAR)


def _draw_figure(draw: ImageDraw.ImageDraw, width: int, height: int, rng: random.Random) -> None:
    cx = width // 2 + rng.randrange(-width // 10, width // 10 + 1)
    head = min(width, height) // 9
    shade = tuple(rng.randrange(20, 70) for _ in range(3))
    top = height // 3
    draw.ellipse((cx - head, top - 2 * head, cx + head, top), fill=shade)
    draw.rounded_rectangle(
        (cx - 2 * head, top + head // 4, cx + 2 * head, height), radius=head, fill=shade
    )


def _draw_label(image: Image.Image, request: GenerationRequest) -> None:
    draw = ImageDraw.Draw(image)
    width, height = image.size
    title = ImageFont.load_default(size=max(16, width // 14))
    body = ImageFont.load_default(size=max(10, width // 40))
    draw.rectangle((0, 0, width, width // 9), fill=(0, 0, 0))
    draw.text((width // 2, width // 18), "PREVIEW", font=title, fill=(255, 220, 0), anchor="mm")
    lines = [PREVIEW_LABEL, f"post {request.post_id} · seed {request.seed}"]
    lines += textwrap.wrap(request.prompt, width=60)[:4]
    step = max(12, width // 34)
    box_top = height - step * (len(lines) + 1)
    draw.rectangle((0, box_top, width, height), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text(
            (step // 2, box_top + step // 2 + i * step), line, font=body, fill=(255, 255, 255)
        )


class PreviewGenerator:
    """Same request, same pixels: the seed and the prompt pick the colours and the pose."""

    name = "preview"

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        return [self._one(request) for request in requests]

    def _one(self, request: GenerationRequest) -> GeneratedImage:
        started = time.perf_counter()
        digest = hashlib.sha256(f"{request.seed}\0{request.prompt}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        image = _gradient(request.width, request.height, *_palette(rng))
        _draw_figure(ImageDraw.Draw(image), request.width, request.height, rng)
        _draw_label(image, request)
        meta = {
            "generator": self.name,
            "preview": True,
            "label": PREVIEW_LABEL,
            "seed": request.seed,
            "width": request.width,
            "height": request.height,
            "lora": None,
            "duration_s": round(time.perf_counter() - started, 4),
        }
        return GeneratedImage(image=image, meta=meta)
