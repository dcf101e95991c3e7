"""Image generators: the contract, the preview placeholder, and the choice between backends.

Heavy imports (torch, diffusers) happen only inside the ``zimage`` module, when it is chosen.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import GenerationError, WeightsMissing
from pipeline.generators.base import GeneratedImage, GenerationRequest, Generator
from pipeline.generators.preview import PreviewGenerator
from pipeline.settings import GeneratorChoice, Settings

__all__ = [
    "ActiveGenerator",
    "GeneratedImage",
    "GenerationError",
    "GenerationRequest",
    "Generator",
    "PreviewGenerator",
    "WeightsMissing",
    "active_generator",
    "select_generator",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveGenerator:
    """Which generator this machine's workers use, and why (the CLI prints ``line``)."""

    name: str  # "preview" or "zimage"
    reason: str

    @property
    def placeholders(self) -> bool:
        return self.name == "preview"

    @property
    def line(self) -> str:
        text = f"generator: {self.name} ({self.reason})"
        if self.placeholders:
            text += (
                "; its placeholder images go to the outbox and to test targets only, "
                "never to Instagram or a webhook"
            )
        return text


def _nvidia_gpu_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


def active_generator(settings: Settings) -> ActiveGenerator:
    """The generator ``select_generator`` builds on this machine, and why; builds nothing.

    Fork-safe and quick without a GPU (torch is imported only when an NVIDIA device is there).
    """
    if settings.generator is GeneratorChoice.PREVIEW:
        return ActiveGenerator("preview", "RYLA_GENERATOR=preview")
    if settings.generator is GeneratorChoice.AUTO and not _nvidia_gpu_visible():
        return ActiveGenerator("preview", "auto: no NVIDIA GPU on this machine")
    try:
        from pipeline.generators import zimage
    except ImportError as exc:
        if settings.generator is GeneratorChoice.ZIMAGE:
            return ActiveGenerator(
                "zimage", f"RYLA_GENERATOR=zimage, but the GPU extra lacks {exc.name}"
            )
        return ActiveGenerator("preview", "auto: the GPU extra is not installed")
    usable, reason = zimage.availability(settings)
    if settings.generator is GeneratorChoice.ZIMAGE:
        return ActiveGenerator(
            "zimage", "RYLA_GENERATOR=zimage" + ("" if usable else f", but {reason}")
        )
    return ActiveGenerator("zimage" if usable else "preview", f"auto: {reason}")


def select_generator(settings: Settings) -> Generator:
    """The generator this process should use, saying which and why.

    ``RYLA_GENERATOR=zimage`` never falls back to the preview: without the extra or the weights
    it fails with the reason (here, or when the weights load).
    """
    active = active_generator(settings)
    log.info("%s", active.line)
    if active.placeholders:
        return PreviewGenerator()
    try:
        from pipeline.generators import zimage
    except ImportError as exc:
        raise GenerationError(
            f"RYLA_GENERATOR=zimage needs the GPU extra ({exc.name} is missing): "
            "pip install 'ryla-pipeline[gpu]'"
        ) from exc
    return zimage.ZImageGenerator(settings)
