"""Image generators: the contract, the preview placeholder, and the choice between backends.

Heavy imports (torch, diffusers) happen only inside the ``zimage`` module, when it is chosen.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline.errors import GenerationError, WeightsMissing
from pipeline.generators.base import GeneratedImage, GenerationRequest, Generator
from pipeline.generators.preview import PreviewGenerator
from pipeline.settings import GeneratorChoice, Settings

__all__ = [
    "GeneratedImage",
    "GenerationError",
    "GenerationRequest",
    "Generator",
    "PreviewGenerator",
    "WeightsMissing",
    "select_generator",
]

log = logging.getLogger(__name__)


def _nvidia_gpu_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


def select_generator(settings: Settings) -> Generator:
    """The generator this process should use, saying which and why."""
    if settings.generator is GeneratorChoice.PREVIEW:
        log.info("generator: preview (RYLA_GENERATOR=preview)")
        return PreviewGenerator()
    if settings.generator is GeneratorChoice.AUTO and not _nvidia_gpu_visible():
        # Decided without importing torch (seconds): laptops start their workers fast.
        log.info("generator: preview (auto: no NVIDIA GPU on this machine)")
        return PreviewGenerator()
    try:
        from pipeline.generators import zimage
    except ImportError as exc:
        if settings.generator is GeneratorChoice.ZIMAGE:
            raise GenerationError(
                f"RYLA_GENERATOR=zimage needs the GPU extra ({exc.name} is missing): "
                "pip install 'ryla-pipeline[gpu]'"
            ) from exc
        log.info("generator: preview (auto: the GPU extra is not installed)")
        return PreviewGenerator()
    if settings.generator is GeneratorChoice.ZIMAGE:
        return zimage.ZImageGenerator(settings)
    usable, reason = zimage.availability(settings)
    if usable:
        log.info("generator: zimage (auto: %s)", reason)
        return zimage.ZImageGenerator(settings)
    log.info("generator: preview (auto: %s)", reason)
    return PreviewGenerator()
