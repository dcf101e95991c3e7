"""The contract every image generator meets: requests in, images with provenance out.

Backends live one per module (``preview``, ``zimage``); ``select_generator`` picks one by setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

__all__ = ["GeneratedImage", "GenerationRequest", "Generator"]


@dataclass(frozen=True)
class GenerationRequest:
    post_id: int
    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int
    lora_path: str | None = None
    lora_scale: float = 1.0

    def __post_init__(self) -> None:
        for name, value in (("width", self.width), ("height", self.height)):
            if value % 16 or not 256 <= value <= 2048:
                raise ValueError(f"{name}={value}: must be a multiple of 16 between 256 and 2048")


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    # Provenance recorded on the asset: generator, model, steps, guidance, seed, size, LoRA, timing.
    meta: dict[str, Any] = field(default_factory=dict)


class Generator(Protocol):
    name: str

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """One image per request, in order; each reproducible from its own seed."""
        ...
