"""How a Z-Image process runs, decided once at load: memory mode, batch limit, compile or not, the
warm-up calls that compile every shape before the first post, and why each was chosen.

Pure (settings, device kind and free memory in; a dataclass out), so every branch is tested
without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.generators.sizes import NATIVE_SIZES
from pipeline.generators.zimage_memory import MemoryChoice, MemoryMode, choose_memory_mode
from pipeline.settings import Settings

__all__ = ["WARMUP_PROMPTS", "RuntimePlan", "WarmupCall", "plan_runtime", "warmup_calls"]

# Captions of clearly different token lengths (after the chat template and diffusers' padding
# to multiples of 32) for both the real Qwen tokenizer and the byte-level test one: compiled
# graphs see the caption length vary during the warm-up, so they are built for any length.
WARMUP_PROMPTS = (
    "a portrait photo",
    "a woman with auburn hair reading a book in a sunlit cafe, 35mm film photo",
    "a woman with auburn hair walking along a rooftop garden at golden hour, city skyline "
    "behind her, candid smile, soft warm light, shot on a phone, natural skin texture",
)


@dataclass(frozen=True)
class WarmupCall:
    """One pipeline call made before the worker is ready: a size and its batch of prompts."""

    width: int
    height: int
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class RuntimePlan:
    """Where the weights live, what is compiled and warmed up, and the reasons, for the log."""

    memory: MemoryChoice
    compile: bool
    compile_reason: str
    warmup: tuple[WarmupCall, ...] = ()
    # A torch.compile backend; tests trace with "eager": the same graphs, no code generation.
    compile_backend: str | Callable[..., Any] = "inductor"
    real_rope: bool = True
    attention_backend: str = "native"  # torch SDPA; cuDNN and flash measured no faster (FACTS)

    @property
    def mode(self) -> MemoryMode:
        return self.memory.mode

    @property
    def max_batch(self) -> int:
        return self.memory.max_batch

    @property
    def warmup_sizes(self) -> list[tuple[int, int]]:
        return list(dict.fromkeys((call.width, call.height) for call in self.warmup))


def _formats_sizes() -> list[tuple[int, int]]:
    """Every size a post can ask for: one per Instagram format, in a fixed order."""
    return list(dict.fromkeys(NATIVE_SIZES.values()))


def warmup_calls(sizes: Iterable[tuple[int, int]], max_batch: int) -> tuple[WarmupCall, ...]:
    """Calls that build every graph a worker will need, so no post ever waits for a compile.

    The compiled blocks specialise on: with or without the time embedding (main and refiner
    blocks), one image or several, and a first fixed sequence length before a dynamic one. So
    each batch size runs at two sizes with captions of two lengths, and every size runs at every
    batch size. Batches only ever hold captions of one length (see ``zimage._batches``): no
    padding mask, so no masked variant to build.
    """
    sizes = list(sizes)
    short, medium, long = WARMUP_PROMPTS
    first, second = sizes[0], sizes[1 % len(sizes)]
    calls = []
    for batch in range(1, max_batch + 1):
        calls += [WarmupCall(*first, (short,) * batch), WarmupCall(*second, (long,) * batch)]
        calls += [WarmupCall(*size, (medium,) * batch) for size in sizes[2:]]
    return tuple(calls)


def _compile_decision(settings: Settings, device_type: str, mode: MemoryMode) -> tuple[bool, str]:
    if device_type != "cuda":
        return False, "no CUDA: eager on the CPU"
    if not settings.zimage_compile:
        return False, "RYLA_ZIMAGE_COMPILE=false"
    if mode is MemoryMode.LOW:
        # Every block is copied in while the previous one computes: the copies set the pace.
        return False, "low mode waits on host-to-GPU copies, which compiling does not shorten"
    return True, "RYLA_ZIMAGE_COMPILE=true (the default on CUDA)"


def plan_runtime(
    settings: Settings, *, device_type: str, free_gib: float | None, total_gib: float | None
) -> RuntimePlan:
    """The plan for this process; ``free_gib`` None means no CUDA device."""
    memory = choose_memory_mode(
        settings.zimage_memory_mode,
        free_gib=free_gib,
        total_gib=total_gib,
        max_batch=settings.zimage_max_batch,
    )
    compiled, reason = _compile_decision(settings, device_type, memory.mode)
    sizes = _formats_sizes()
    if compiled:
        warmup = warmup_calls(sizes, memory.max_batch)
    elif device_type == "cuda":
        # Eager needs no compiling, but the first CUDA call pays for cuBLAS and cuDNN set-up.
        warmup = (WarmupCall(*sizes[0], (WARMUP_PROMPTS[0],)),)
    else:
        warmup = ()
    # The real-valued RoPE only pays where inductor can fuse it; eagerly it is more kernels.
    return RuntimePlan(
        memory=memory, compile=compiled, compile_reason=reason, warmup=warmup, real_rope=compiled
    )
