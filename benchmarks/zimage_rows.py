"""Rows of the Z-Image benchmark: one configuration measured through the production generator,
and the switches between configurations on one loaded pipeline (placement, RoPE, memory cap).

Used by ``zimage_gpu.py``; nothing here runs on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers.hooks import HookRegistry
from diffusers.models.transformers.transformer_z_image import (
    RopeEmbedder,
    ZSingleStreamAttnProcessor,
)

from pipeline.generators.base import GenerationRequest
from pipeline.generators.zimage import ZImageGenerator
from pipeline.generators.zimage_compile import CompileCounters
from pipeline.generators.zimage_memory import MemoryChoice, MemoryMode
from pipeline.generators.zimage_plan import RuntimePlan, WarmupCall, warmup_calls
from pipeline.generators.zimage_rope import RealRopeTable
from pipeline.settings import Settings

log = logging.getLogger("zimage_gpu")

GIB = 1024**3
# Captions of different lengths, as posts have; a batch row repeats one (a carousel).
PROMPTS = (
    "ryla_anna, a woman with auburn hair reading in a sunlit cafe, 35mm film photo, soft light",
    "ryla_anna on a rooftop at dusk, city lights behind her, candid smile, shot on a phone",
    "ryla_anna hiking a misty mountain trail, green jacket, morning fog",
    "ryla_anna cooking pasta in a small kitchen, steam rising, warm tungsten light, close up, "
    "flour on the counter, an old radio on the shelf",
)


@dataclass
class Run:
    """One measured configuration: medians over the timed calls after its warm-up."""

    name: str
    memory_mode: str
    compiled: bool
    rope: str
    batch: int
    cap_gib: float | None = None
    s_per_image: float | None = None
    images_per_s: float | None = None
    peak_gib: float | None = None
    peak_reserved_gib: float | None = None
    warmup_s: float | None = None
    graphs_compiled_while_timed: int = 0
    note: str = ""
    error: str | None = None
    call_seconds: list[float] = field(default_factory=list)


def plan_for(
    mode: MemoryMode, *, compiled: bool, real_rope: bool, sizes: list[tuple[int, int]], batch: int
) -> RuntimePlan:
    """A plan forced for a row, whatever the free memory says."""
    warmup = warmup_calls(sizes, batch) if compiled else (WarmupCall(*sizes[0], (PROMPTS[0],)),)
    return RuntimePlan(
        memory=MemoryChoice(mode, batch, "forced by the benchmark"),
        compile=compiled,
        compile_reason="forced by the benchmark",
        warmup=warmup,
        real_rope=real_rope,
    )


def requests(count: int, size: int, first_seed: int, carousel: bool) -> list[GenerationRequest]:
    """``count`` requests at ``size``; one caption for all (a carousel) or one each."""
    return [
        GenerationRequest(
            post_id=first_seed + i,
            prompt=PROMPTS[0 if carousel else i % len(PROMPTS)],
            negative_prompt="",
            width=size,
            height=size,
            seed=first_seed + i,
        )
        for i in range(count)
    ]


def measure(generator: ZImageGenerator, run: Run, args: argparse.Namespace) -> Run:
    """Load (set-up and warm-up), one untimed call, then the timed calls, as a worker would."""
    started = time.perf_counter()
    generator.load()
    generator.generate(requests(run.batch, args.size, 10_000, carousel=run.batch > 1))
    run.warmup_s = round(time.perf_counter() - started, 2)
    before = CompileCounters.now()
    calls = max(1, -(-args.images // run.batch))
    metas = [
        generator.generate(requests(run.batch, args.size, i * run.batch, carousel=run.batch > 1))[
            0
        ].meta
        for i in range(calls)
    ]
    run.graphs_compiled_while_timed = CompileCounters.now().since(before).graphs
    return summarise(run, [(m["batch_duration_s"], m["peak_gpu_memory_gib"]) for m in metas])


def summarise(run: Run, results: list[tuple[float, float | None]]) -> Run:
    run.call_seconds = [round(seconds, 4) for seconds, _ in results]
    median = statistics.median(run.call_seconds)
    run.s_per_image = round(median / run.batch, 4)
    run.images_per_s = round(run.batch / median, 3)
    peaks = [peak for _, peak in results if peak is not None]
    run.peak_gib = round(max(peaks), 3) if peaks else None
    if torch.cuda.is_available():
        run.peak_reserved_gib = round(torch.cuda.max_memory_reserved() / GIB, 3)
    return run


def attempt(runs: list[Run], run: Run, action: Callable[[], Run]) -> Run:
    """Measure, or record why it failed: one broken configuration must not lose the others."""
    try:
        run = action()
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        log.warning("%s failed: %s", run.name, run.error)
    runs.append(run)
    log.info("%s", format_row(run))
    return run


def format_row(run: Run) -> str:
    def show(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    cap = "-" if run.cap_gib is None else f"{run.cap_gib:g}"
    flags = (
        f"{run.memory_mode:>8} {'yes' if run.compiled else 'no':>4} {run.rope:>7} {run.batch:>2}"
    )
    figures = (
        f"{show(run.s_per_image, 3):>8} {show(run.images_per_s, 2):>6} "
        f"{show(run.peak_gib, 2):>8} {cap:>4}"
    )
    return f"{run.name:<30} {flags} {figures}  {run.error or run.note}"


# --- switching one loaded pipeline between configurations ------------------------------------


def remove_offloading(
    pipeline: Any, components: tuple[str, ...] = ("text_encoder", "transformer", "vae")
) -> None:
    """Take diffusers' offloading hooks off components; the weights stay where they are."""
    for name in components:
        registry = HookRegistry.check_if_exists_or_initialize(getattr(pipeline, name))
        for hook in (
            "group_offloading",
            "lazy_prefetch_group_offloading",
            "layer_execution_tracker",
        ):
            registry.remove_hook(hook, recurse=True)


def use_complex_rope(transformer: Any) -> None:
    """Put diffusers' own RoPE table and attention processors back (the eager baseline)."""
    table = transformer.rope_embedder
    if isinstance(table, RealRopeTable):
        transformer.rope_embedder = RopeEmbedder(
            theta=table.theta, axes_dims=table.axes_dims, axes_lens=table.axes_lens
        )
    for module in transformer.modules():
        if hasattr(module, "processor") and hasattr(module, "set_processor"):
            module.set_processor(ZSingleStreamAttnProcessor())


@contextlib.contextmanager
def memory_cap(device: torch.device, cap_gib: float | None) -> Iterator[None]:
    """Hold this process to ``cap_gib`` of the card, as a smaller card would."""
    if device.type != "cuda":
        yield
        return
    index = device.index if device.index is not None else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.empty_cache()
    fraction = 1.0 if cap_gib is None else min(1.0, cap_gib * GIB / total)
    # The device must carry an index: torch.device("cuda") alone raises ValueError (FACTS).
    torch.cuda.set_per_process_memory_fraction(fraction, torch.device("cuda", index))
    torch.cuda.reset_peak_memory_stats(index)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, torch.device("cuda", index))


@contextlib.contextmanager
def eager_stance(compiled: bool) -> Iterator[None]:
    """Run already-compiled blocks eagerly for an uncompiled row."""
    if compiled:
        yield
        return
    with torch.compiler.set_stance("force_eager"):
        yield


def pixel_gap(first: Any, second: Any) -> dict[str, float]:
    """Largest and mean 8-bit difference between two images."""
    gap = np.abs(np.asarray(first, dtype=np.int16) - np.asarray(second, dtype=np.int16))
    return {"max": int(gap.max()), "mean": round(float(gap.mean()), 4)}


def generator_for(settings: Settings, pipeline: Any, plan: RuntimePlan) -> ZImageGenerator:
    return ZImageGenerator(
        settings.model_copy(update={"zimage_max_batch": plan.max_batch}), pipeline, plan
    )
