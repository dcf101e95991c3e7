"""The in-process sections of the Z-Image benchmark, on one pipeline built once: every memory
mode eager and compiled, the complex against the real-valued RoPE, and batches.

Rows go from the most memory to the least (full, then balanced under 16 GiB, then low under 4
GiB), so the weights move off the GPU only twice. Used by ``zimage_gpu.py``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.zimage_rows import (
    PROMPTS,
    Run,
    attempt,
    eager_stance,
    generator_for,
    measure,
    memory_cap,
    pixel_gap,
    plan_for,
    remove_offloading,
    requests,
    summarise,
    use_complex_rope,
)
from pipeline.generators.zimage import ZImageGenerator
from pipeline.generators.zimage_device import GpuTimer
from pipeline.generators.zimage_memory import MemoryMode
from pipeline.generators.zimage_random import build_random_pipeline
from pipeline.generators.zimage_warm import run_pipeline
from pipeline.settings import Settings, get_settings

log = logging.getLogger("zimage_gpu")

CAPS_GIB = {MemoryMode.FULL: None, MemoryMode.BALANCED: 16.0, MemoryMode.LOW: 4.0}


@dataclass
class Bench:
    """What every row shares: the options, the time left, and the results so far."""

    args: argparse.Namespace
    deadline: float
    runs: list[Run]
    checks: dict[str, Any]
    cache: Path
    pipeline: Any = None
    settings: Settings | None = None
    mode: MemoryMode | None = None

    @property
    def device(self) -> torch.device:
        return torch.device(self.args.device)

    def sizes(self) -> list[tuple[int, int]]:
        """Two shapes for the warm-up, so the compiled graphs see the sequence length vary."""
        size = self.args.size
        return [(size, size), (size - 128, size + 96) if size >= 512 else (size + 64, size)]

    def out_of_time(self, run: Run) -> bool:
        if time.monotonic() < self.deadline:
            return False
        run.error = "skipped: time budget"
        self.runs.append(run)
        return True


def build(bench: Bench) -> None:
    args = bench.args
    started = time.perf_counter()
    dtype = torch.bfloat16 if bench.device.type == "cuda" else torch.float32
    if args.weights:
        from diffusers import ZImagePipeline

        pipeline = ZImagePipeline.from_pretrained(args.weights, dtype=dtype, local_files_only=True)
        pipeline.to(bench.device)
    else:
        pipeline = build_random_pipeline(args.preset, dtype=dtype, device=bench.device)
    bench.pipeline = pipeline
    data = Path(tempfile.mkdtemp(prefix="ryla-bench-"))
    bench.settings = get_settings(data_dir=data, zimage_compile_cache_dir=bench.cache)
    bench.checks["build_s"] = round(time.perf_counter() - started, 1)


def enter_mode(bench: Bench, mode: MemoryMode) -> None:
    """Leave the previous mode: hooks off and, when the mode shrinks, every weight to the host,
    so the next mode's cap holds from its first allocation."""
    remove_offloading(bench.pipeline)
    if bench.mode is not None and mode is not bench.mode and bench.device.type == "cuda":
        bench.pipeline.to("cpu")
        torch.cuda.empty_cache()
    bench.mode = mode


def mode_row(
    bench: Bench,
    mode: MemoryMode,
    *,
    compiled: bool,
    rope: str = "real",
    batch: int = 1,
    name: str | None = None,
    after: Callable[[ZImageGenerator], None] | None = None,
) -> Run:
    real = rope == "real" and compiled
    label = name or f"{mode}_{'compiled' if compiled else 'eager'}"
    run = Run(label, str(mode), compiled, "real" if real else "complex", batch, CAPS_GIB[mode])
    if bench.out_of_time(run):
        return run
    plan = plan_for(
        mode, compiled=compiled, real_rope=real, sizes=bench.sizes(), batch=max(2, batch)
    )

    def action() -> Run:
        enter_mode(bench, mode)
        if not real:
            use_complex_rope(bench.pipeline.transformer)
        assert bench.settings is not None
        generator = generator_for(bench.settings, bench.pipeline, plan)
        with memory_cap(bench.device, CAPS_GIB[mode]), eager_stance(compiled):
            measured = measure(generator, run, bench.args)
            if after is not None:
                after(generator)
        return measured

    return attempt(bench.runs, run, action)


def image_of(generator: ZImageGenerator, size: int) -> Any:
    return generator.generate(requests(1, size, 4242, carousel=True))[0].image


def full_rows(bench: Bench) -> None:
    """Full mode: eager, compiled with diffusers' RoPE, compiled with ours; images compared."""
    size, images = bench.args.size, {}

    def keep(key: str) -> Callable[[ZImageGenerator], None]:
        return lambda generator: images.__setitem__(key, image_of(generator, size))

    mode_row(bench, MemoryMode.FULL, compiled=False, after=keep("eager"))
    if "rope" not in bench.args.skip:
        mode_row(
            bench,
            MemoryMode.FULL,
            compiled=True,
            rope="complex",
            name="full_compiled_complex_rope",
            after=keep("complex"),
        )
        torch._dynamo.reset()  # the real-valued graphs are compiled afresh, as a worker would
    mode_row(bench, MemoryMode.FULL, compiled=True, after=keep("real"))
    if {"eager", "complex", "real"} <= images.keys():
        bench.checks["rope_real_vs_complex"] = {
            "real_vs_complex_compiled": pixel_gap(images["real"], images["complex"]),
            "compiled_vs_eager_for_scale": pixel_gap(images["complex"], images["eager"]),
        }


def batch_rows(bench: Bench) -> None:
    """Full compiled at batch 2: a carousel (what workers batch) and two caption lengths (what
    they never batch: the padding mask), with the gap to each image generated alone."""

    def carousel_gap(generator: ZImageGenerator) -> None:
        pair = requests(2, bench.args.size, 77, carousel=True)
        together = generator.generate(pair)
        alone = [generator.generate([one])[0] for one in pair]
        bench.checks["batch_vs_alone"] = [
            pixel_gap(joint.image, single.image)
            for joint, single in zip(together, alone, strict=True)
        ]

    mode_row(
        bench,
        MemoryMode.FULL,
        compiled=True,
        batch=2,
        name="full_compiled_b2_carousel",
        after=carousel_gap,
    )
    run = Run(
        "full_compiled_b2_mixed_masked",
        "full",
        True,
        "real",
        2,
        None,
        note="two caption lengths: masked attention, never batched by workers",
    )
    if bench.out_of_time(run):
        return
    plan = plan_for(MemoryMode.FULL, compiled=True, real_rope=True, sizes=bench.sizes(), batch=2)
    assert bench.settings is not None
    generator = generator_for(bench.settings, bench.pipeline, plan)

    def masked() -> Run:
        generator.load()
        encoded = generator.warm.encode([PROMPTS[2], PROMPTS[3]])
        mixed = [encoded[PROMPTS[2]], encoded[PROMPTS[3]]]
        size = (bench.args.size, bench.args.size)
        run_pipeline(generator.warm, mixed, [1, 2], size)  # compiles the masked variant
        results = []
        for call in range(max(1, bench.args.images // 2)):
            with GpuTimer(generator.warm.device) as timer:
                run_pipeline(generator.warm, mixed, [10 + call, 20 + call], size)
            results.append((timer.seconds, timer.peak_gib))
        return summarise(run, results)

    attempt(bench.runs, run, masked)


def carousel_row(bench: Bench, mode: MemoryMode, images: int = 4) -> None:
    """A carousel in a mode held to one image a call: ``images`` calls share one encoding of
    the caption, so each image pays 1/``images`` of the encoder's stream. Timed per image."""
    run = Run(
        f"{mode}_compiled_carousel{images}",
        str(mode),
        True,
        "real",
        1,
        CAPS_GIB[mode],
        note=f"{images} images of one caption, one a call, one encoding",
    )
    if bench.out_of_time(run):
        return
    plan = plan_for(mode, compiled=True, real_rope=True, sizes=bench.sizes(), batch=1)

    def action() -> Run:
        enter_mode(bench, mode)
        assert bench.settings is not None
        generator = generator_for(bench.settings, bench.pipeline, plan)
        size, results = bench.args.size, []
        with memory_cap(bench.device, CAPS_GIB[mode]):
            generator.load()
            generator.generate(requests(images, size, 5_000, carousel=True))
            for call in range(max(1, bench.args.images // images)):
                made = generator.generate(requests(images, size, 6_000 + call * images, True))
                results += [(i.meta["duration_s"], i.meta["peak_gpu_memory_gib"]) for i in made]
        return summarise(run, results)

    attempt(bench.runs, run, action)


def run_rows(bench: Bench, on_section: Callable[[], None]) -> None:
    """Every in-process section in order, saving after each."""
    skip = bench.args.skip
    if "modes" in skip and "rope" in skip and "batch" in skip:
        return
    build(bench)
    on_section()
    full_rows(bench)
    on_section()
    if "batch" not in skip:
        batch_rows(bench)
        on_section()
    if "modes" not in skip:
        for mode in (MemoryMode.BALANCED, MemoryMode.LOW):
            mode_row(bench, mode, compiled=False)
            # Workers never compile low mode; the row measures what it would buy.
            name = "low_compiled_forced" if mode is MemoryMode.LOW else None
            mode_row(bench, mode, compiled=True, name=name)
            if mode is MemoryMode.BALANCED:
                carousel_row(bench, mode)
            on_section()
