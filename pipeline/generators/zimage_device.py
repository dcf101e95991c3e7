"""The device under the Z-Image pipeline: which one, its name, the attention backend, VAE tiling,
and a timer that also reads peak GPU memory. CUDA is touched only when a function is called.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

import torch

from pipeline.errors import GenerationError

__all__ = [
    "GIB",
    "VAE_TILING_ABOVE_PIXELS",
    "GpuTimer",
    "cuda_device_count",
    "device_name",
    "execution_device",
    "set_attention_backend",
    "set_vae_tiling",
]

log = logging.getLogger(__name__)

GIB = 1024**3
# Above ~2 MP the VAE decoder's activations dominate the peak: decode in tiles instead.
VAE_TILING_ABOVE_PIXELS = 2_000_000


def cuda_device_count() -> int:
    """GPUs visible to this process, asked through NVML so a prefork parent stays fork-safe."""
    return torch.cuda.device_count()


def execution_device() -> torch.device:
    return torch.device("cuda") if cuda_device_count() else torch.device("cpu")


def set_vae_tiling(pipeline: Any, width: int, height: int) -> bool:
    """Tile the VAE decode for large images only: tiles cost time and can leave faint seams."""
    tiled = width * height > VAE_TILING_ABOVE_PIXELS
    if tiled:
        pipeline.vae.enable_tiling()
    else:
        pipeline.vae.disable_tiling()
    return tiled


def device_name(device: torch.device) -> str | None:
    """The GPU's marketing name, or None off CUDA."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def set_attention_backend(transformer: Any, backend: str) -> None:
    """Route attention through diffusers' dispatcher: ``native``, ``_native_cudnn``, ``flash``…"""
    try:
        transformer.set_attention_backend(backend)
    except (ValueError, RuntimeError, ImportError) as exc:
        raise GenerationError(f"attention backend {backend!r} is not usable here: {exc}") from exc


class GpuTimer:
    """Wall time of a block, and the peak GPU memory it allocated (None off CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._device = device
        self._started = 0.0
        self.seconds = 0.0
        self.peak_gib: float | None = None
        self.peak_reserved_gib: float | None = None

    def __enter__(self) -> GpuTimer:
        if self._cuda:
            torch.cuda.synchronize(self._device)
            torch.cuda.reset_peak_memory_stats(self._device)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._cuda:
            torch.cuda.synchronize(self._device)
            self.peak_gib = torch.cuda.max_memory_allocated(self._device) / GIB
            self.peak_reserved_gib = torch.cuda.max_memory_reserved(self._device) / GIB
        self.seconds = time.perf_counter() - self._started
