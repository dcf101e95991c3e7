"""Where Z-Image's weights live on the GPU: the memory modes, the choice by free memory, the hooks.

``full`` keeps everything resident; ``balanced`` streams the text encoder in (≤ 16 GiB); ``low``
streams every block (≤ 4 GiB). Streaming is diffusers' group offloading, on CUDA streams. A
streamed text encoder keeps its token table (151,936 x 2,560: 0.78 GB in bf16, a tenth of the
encoder) in host memory, where a look-up reads a caption's few rows instead of copying it all in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch
from diffusers.hooks import apply_group_offloading

from pipeline.errors import GenerationError

__all__ = [
    "ACTIVATIONS_PER_IMAGE_GIB",
    "HEADROOM_GIB",
    "PEAK_GIB",
    "HostEmbedding",
    "MemoryChoice",
    "MemoryMode",
    "choose_memory_mode",
    "free_memory_gib",
    "needed_gib",
    "place_pipeline",
    "placement",
    "stream",
]

GIB = 1024**3


class MemoryMode(StrEnum):
    FULL = "full"  # everything resident: fastest
    BALANCED = "balanced"  # transformer + VAE resident, text encoder streamed in for each prompt
    LOW = "low"  # every block streamed in as it runs: fits 4 GiB, bound by host-to-GPU copies
    CPU = "cpu"  # no CUDA: tests and dry runs only


# Fastest first: ``auto`` takes the first that fits.
_BY_SPEED = (MemoryMode.FULL, MemoryMode.BALANCED, MemoryMode.LOW)

# Peak GPU memory of one 1 MP image (8 steps, bf16), measured on an H200 (FACTS, 2026-11-30):
# full 21.7 GiB; text encoder streamed 14.2 GiB; every block streamed 2.6 GiB.
PEAK_GIB = {MemoryMode.FULL: 21.7, MemoryMode.BALANCED: 14.2, MemoryMode.LOW: 2.6}
# Each further image in a call: batch 2 peaked at 24.1 GiB and batch 4 at 28.8 GiB in full mode.
ACTIVATIONS_PER_IMAGE_GIB = 2.35
# Left free beyond the measured peak: allocator fragmentation, cuBLAS workspaces, the LoRA being
# fused. The CUDA context itself is already outside what mem_get_info reports as free.
HEADROOM_GIB = 0.8


@dataclass(frozen=True)
class MemoryChoice:
    """A memory mode, the most images one call may hold in it, and why."""

    mode: MemoryMode
    max_batch: int
    reason: str


def needed_gib(mode: MemoryMode, batch: int = 1) -> float:
    """Free GPU memory a call of ``batch`` images needs in this mode."""
    peak = PEAK_GIB[mode] + ACTIVATIONS_PER_IMAGE_GIB * (batch - 1)
    return round(peak + HEADROOM_GIB, 2)


def _largest_batch(mode: MemoryMode, free_gib: float, wanted: int) -> int:
    fitting = [batch for batch in range(1, wanted + 1) if needed_gib(mode, batch) <= free_gib]
    return max(fitting, default=1)


def choose_memory_mode(
    setting: str, *, free_gib: float | None, total_gib: float | None, max_batch: int
) -> MemoryChoice:
    """The mode for this card from RYLA_ZIMAGE_MEMORY_MODE and the free memory (None: no CUDA)."""
    if free_gib is None:
        return MemoryChoice(MemoryMode.CPU, max_batch, "no CUDA device: everything on the CPU")
    found = f"{free_gib:.1f} GiB free of {total_gib or 0:.1f} GiB"
    if setting != "auto":
        mode = MemoryMode(setting)
        reason = f"RYLA_ZIMAGE_MEMORY_MODE={setting}, {found}"
        if needed_gib(mode) > free_gib:
            reason += f"; {mode} needs {needed_gib(mode):.1f} GiB: expect out-of-memory errors"
        return MemoryChoice(mode, _largest_batch(mode, free_gib, max_batch), reason)
    for rank, mode in enumerate(_BY_SPEED):
        if needed_gib(mode) <= free_gib:
            faster = [f"; {other} needs {needed_gib(other):.1f} GiB" for other in _BY_SPEED[:rank]]
            batch = _largest_batch(mode, free_gib, max_batch)
            return MemoryChoice(mode, batch, f"auto: {found}{''.join(faster)}")
    raise GenerationError(
        f"Z-Image does not fit this GPU: {found}, and even low mode needs "
        f"{needed_gib(MemoryMode.LOW):.1f} GiB: free the GPU (another process may hold it) "
        "or set RYLA_GENERATOR=preview"
    )


def free_memory_gib(device: torch.device) -> tuple[float, float] | tuple[None, None]:
    """Free and total memory of this CUDA device in GiB, or (None, None) off CUDA."""
    if device.type != "cuda":
        return None, None
    free, total = torch.cuda.mem_get_info(device)
    return free / GIB, total / GIB


class HostEmbedding(torch.nn.Module):
    """A token-embedding table that stays in host memory: a look-up copies out only its rows.

    The table is a plain tensor attribute, neither parameter nor buffer, so offloading hooks
    and ``.to()`` leave it where it is, and the encoder's ``state_dict`` no longer holds it:
    inference only, never saved back.
    """

    def __init__(self, embedding: torch.nn.Embedding) -> None:
        super().__init__()
        self.table = embedding.weight.detach().to("cpu")
        self.num_embeddings, self.embedding_dim = self.table.shape
        self.padding_idx = embedding.padding_idx

    @property
    def weight(self) -> torch.Tensor:
        return self.table

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = torch.nn.functional.embedding(ids.to(self.table.device), self.table)
        return rows.to(ids.device)


def _table_on_host(text_encoder: Any) -> None:
    """Swap the encoder's token embedding for a ``HostEmbedding`` (once)."""
    embedding = text_encoder.get_input_embeddings()
    if not isinstance(embedding, HostEmbedding):
        text_encoder.set_input_embeddings(HostEmbedding(embedding))


def stream(module: Any, device: torch.device, level: str) -> None:
    """Keep ``module`` in host memory and bring its groups in just before they run.

    On CUDA the next group is copied on a side stream while the current one computes; on a CPU
    (tests) the same hooks run without streams.
    """
    streams = device.type == "cuda"
    apply_group_offloading(
        module,
        onload_device=device,
        offload_device=torch.device("cpu"),
        offload_type=level,
        num_blocks_per_group=1 if level == "block_level" else None,
        non_blocking=streams,
        use_stream=streams,
    )


def place_pipeline(pipeline: Any, mode: MemoryMode, device: torch.device) -> None:
    """Put each component where the mode says; streamed ones get diffusers' offloading hooks."""
    if mode in (MemoryMode.BALANCED, MemoryMode.LOW):  # the encoder is streamed in both
        _table_on_host(pipeline.text_encoder)
    if mode is MemoryMode.FULL:
        pipeline.to(device)
    elif mode is MemoryMode.BALANCED:
        # The encoder runs once per prompt and the transformer 8 times: stream the encoder.
        pipeline.transformer.to(device)
        pipeline.vae.to(device)
        stream(pipeline.text_encoder, device, "leaf_level")
    elif mode is MemoryMode.LOW:
        for component in (pipeline.text_encoder, pipeline.transformer, pipeline.vae):
            stream(component, device, "block_level")


def _offloading_hook(module: Any) -> Any:
    """The first diffusers group-offloading hook found on the module or below it, if any."""
    for submodule in module.modules():
        registry = getattr(submodule, "_diffusers_hook", None)
        hook = registry.get_hook("group_offloading") if registry is not None else None
        if hook is not None:
            return hook
    return None


def placement(pipeline: Any) -> dict[str, str]:
    """Where each weighted component lives: ``resident on cuda:0``, ``streamed (leaf_level)`` …"""
    where = {}
    for name in ("text_encoder", "transformer", "vae"):
        module = getattr(pipeline, name)
        hook = _offloading_hook(module)
        if hook is None:
            where[name] = f"resident on {next(module.parameters()).device}"
        else:
            kind = hook.config.offload_type.value
            streams = "" if hook.config.stream is None else ", CUDA streams"
            where[name] = f"streamed ({kind}{streams})"
    if isinstance(pipeline.text_encoder.get_input_embeddings(), HostEmbedding):
        where["text_encoder"] += ", token table in host memory"
    return where
