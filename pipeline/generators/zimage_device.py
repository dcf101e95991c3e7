"""Where the Z-Image pipeline runs: memory modes, VAE tiling, attention backend, compile, GPU stats.

Used by the ``zimage`` generator and the benchmark; CUDA is touched only when a function is called.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from types import TracebackType
from typing import Any

import torch

from pipeline.errors import GenerationError

__all__ = [
    "FULL_MODE_MIN_FREE_GIB",
    "GIB",
    "VAE_TILING_ABOVE_PIXELS",
    "GpuTimer",
    "MemoryMode",
    "choose_memory_mode",
    "compile_repeated_blocks",
    "cuda_device_count",
    "device_name",
    "execution_device",
    "place_pipeline",
    "set_attention_backend",
    "set_vae_tiling",
]

log = logging.getLogger(__name__)

GIB = 1024**3
# bf16 weights take ~19.1 GiB (12.3 + 8.0 + 0.17 GB); a 1 MP call adds ~2 GiB of activations.
FULL_MODE_MIN_FREE_GIB = 22.0
# Above ~2 MP the VAE decoder's activations dominate the peak: decode in tiles instead.
VAE_TILING_ABOVE_PIXELS = 2_000_000

_MODE_SETTINGS = ("auto", "full", "offload")


class MemoryMode(StrEnum):
    FULL = "full"  # every component on the GPU: fastest, ~21 GB
    OFFLOAD = "offload"  # one component on the GPU at a time: fits 16 GB cards
    CPU = "cpu"  # no CUDA: tests and dry runs only


def cuda_device_count() -> int:
    """GPUs visible to this process, asked through NVML so a prefork parent stays fork-safe."""
    return torch.cuda.device_count()


def execution_device() -> torch.device:
    return torch.device("cuda") if cuda_device_count() else torch.device("cpu")


def choose_memory_mode(setting: str, device: torch.device) -> tuple[MemoryMode, str]:
    """The mode for this card, and why, from RYLA_ZIMAGE_MEMORY_MODE or the free GPU memory."""
    if setting not in _MODE_SETTINGS:
        raise GenerationError(
            f"RYLA_ZIMAGE_MEMORY_MODE={setting!r} is not a memory mode: "
            f"use one of {', '.join(_MODE_SETTINGS)}"
        )
    if device.type != "cuda":
        return MemoryMode.CPU, "no CUDA device: the pipeline stays on the CPU"
    if setting != "auto":
        return MemoryMode(setting), f"RYLA_ZIMAGE_MEMORY_MODE={setting}"
    free, total = torch.cuda.mem_get_info(device)
    found = f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB"
    if free / GIB >= FULL_MODE_MIN_FREE_GIB:
        return MemoryMode.FULL, found
    return MemoryMode.OFFLOAD, f"{found}, full mode needs {FULL_MODE_MIN_FREE_GIB:.0f} GiB"


def place_pipeline(pipeline: Any, mode: MemoryMode, device: torch.device) -> None:
    if mode is MemoryMode.OFFLOAD:
        # Whole components move in turn (text encoder, transformer, VAE): ~12 GiB peak at 1 MP.
        pipeline.enable_model_cpu_offload(device=device)
    elif mode is MemoryMode.FULL:
        pipeline.to(device)


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


def compile_repeated_blocks(transformer: Any, **options: Any) -> None:
    """Compile the 30 identical blocks, not the whole model.

    Call it after one eager call: a cold ``fullgraph`` compile of the whole transformer fails on
    the lazily built RoPE table, and regional compilation does not recompile per resolution.
    """
    transformer.compile_repeated_blocks(fullgraph=True, **options)


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
