"""The contract every image generator meets: requests in, images with provenance out.

Backends live one per module (``preview``, ``zimage``); ``select_generator`` picks one by setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

__all__ = ["GeneratedImage", "GenerationRequest", "Generator", "is_placeholder"]


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
    # ``preview: False`` marks a real image; anything else counts as a placeholder.
    meta: dict[str, Any] = field(default_factory=dict)


def is_placeholder(meta: Mapping[str, Any]) -> bool:
    """Whether an image's provenance says placeholder: the preview generator's, or unmarked.

    Only a generator that records ``preview: False`` (Z-Image does) makes images that may go to
    Instagram or a webhook; an image of unknown origin is held back like a placeholder.
    """
    return meta.get("preview", True) is not False or meta.get("generator") == "preview"


class Generator(Protocol):
    name: str

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """One image per request, in order; each reproducible from its own seed."""
        ...
