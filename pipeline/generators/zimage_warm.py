"""A warm Z-Image pipeline: set up per its plan (RoPE, compile, memory mode), warmed up for every
size and batch it will serve, and the one "ready" line that says how and how fast.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from pipeline.generators.zimage_captions import encode_captions
from pipeline.generators.zimage_compile import (
    CompileCounters,
    compile_blocks,
    compile_cache_folder,
    compile_decoder,
    use_compile_cache,
)
from pipeline.generators.zimage_device import device_name, set_attention_backend, set_vae_tiling
from pipeline.generators.zimage_lora import FusedLora, LoraAdapters
from pipeline.generators.zimage_memory import MemoryMode, place_pipeline, placement
from pipeline.generators.zimage_plan import RuntimePlan
from pipeline.generators.zimage_rope import use_real_rope
from pipeline.settings import Settings

__all__ = [
    "GUIDANCE_SCALE",
    "NUM_INFERENCE_STEPS",
    "WARMUP_STEPS",
    "Readiness",
    "WarmPipeline",
    "prepare",
    "ready_line",
    "run_pipeline",
]

log = logging.getLogger("pipeline.generators.zimage")

# diffusers >= 0.39 counts steps as transformer evaluations: 8 gives the 8 forwards that the model
# card's "9 steps" meant on older releases (9 now runs 9, on a different schedule).
NUM_INFERENCE_STEPS = 8
# Turbo is distilled to run without classifier-free guidance. The pipeline defaults to 5.0, and any
# value > 0 turns CFG on: the batch doubles and so does the work. Always pass 0.0.
GUIDANCE_SCALE = 0.0
# Every step runs the same graphs: one step per warm-up call compiles them all, VAE included.
WARMUP_STEPS = 1


@dataclass(frozen=True)
class Readiness:
    """How the process got ready: the time it took and what compiled on the way."""

    seconds: float
    load_seconds: float
    warmup_seconds: float
    warmup_calls: int
    compiled: CompileCounters
    cache_folder: str | None


@dataclass
class WarmPipeline:
    """A set-up pipeline and what is recorded about it on every image."""

    pipeline: Any
    loras: LoraAdapters | FusedLora
    device: torch.device
    plan: RuntimePlan
    model_id: str
    model_revision: str | None
    model_path: str | None
    dtype: str
    gpu_name: str | None
    readiness: Readiness | None = field(default=None)

    def encode(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Each distinct caption encoded once, on this pipeline's device."""
        return encode_captions(self.pipeline, captions, self.device)


def run_pipeline(
    warm: WarmPipeline,
    captions: list[torch.Tensor],
    seeds: list[int],
    size: tuple[int, int],
    steps: int = NUM_INFERENCE_STEPS,
) -> list[Image.Image]:
    """One pipeline call: one image per encoded caption (``WarmPipeline.encode``), each from its
    own seed."""
    # A CPU generator per image: the noise depends on its seed only, not on the batch or card.
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    output = warm.pipeline(
        prompt_embeds=list(captions),  # no prompt: the pipeline skips its own encoding
        width=size[0],
        height=size[1],
        num_inference_steps=steps,
        guidance_scale=GUIDANCE_SCALE,  # also why negative prompts are not passed: no CFG
        generator=generators,
        output_type="pil",
    )
    return list(output.images)


def _set_up(
    pipeline: Any, settings: Settings, device: torch.device, plan: RuntimePlan
) -> str | None:
    """Apply the plan to a loaded pipeline; the compile cache folder in use, if any."""
    for component in (pipeline.text_encoder, pipeline.transformer, pipeline.vae):
        component.requires_grad_(False)  # inference only; see compile_blocks for why it matters
    if plan.real_rope:
        use_real_rope(pipeline.transformer)
    if plan.attention_backend != "native":
        set_attention_backend(pipeline.transformer, plan.attention_backend)
    folder = None
    if plan.compile:
        if plan.compile_backend == "inductor":
            cache, _ = compile_cache_folder(settings)
            use_compile_cache(cache)
            folder = str(cache)
        compile_blocks(pipeline.transformer, backend=plan.compile_backend)
        if plan.mode is not MemoryMode.LOW:  # a streamed VAE is paced by its copies
            compile_decoder(pipeline.vae, backend=plan.compile_backend)
    place_pipeline(pipeline, plan.mode, device)
    pipeline.set_progress_bar_config(disable=True)
    return folder


def _warm_up(warm: WarmPipeline) -> tuple[float, CompileCounters]:
    """Run the plan's warm-up calls; their time and what compiled during them."""
    before, started = CompileCounters.now(), time.perf_counter()
    # The calls reuse three captions: encode them once (a streamed encoder, once per call, would
    # copy its weights in for every call).
    encoded = warm.encode([prompt for call in warm.plan.warmup for prompt in call.prompts])
    for call in warm.plan.warmup:
        set_vae_tiling(warm.pipeline, call.width, call.height)
        run_pipeline(
            warm,
            [encoded[prompt] for prompt in call.prompts],
            list(range(len(call.prompts))),
            (call.width, call.height),
            steps=WARMUP_STEPS,
        )
    return time.perf_counter() - started, CompileCounters.now().since(before)


def prepare(
    pipeline: Any,
    *,
    settings: Settings,
    device: torch.device,
    plan: RuntimePlan,
    source: dict[str, Any],
    started: float,
) -> WarmPipeline:
    """Set up a loaded pipeline, warm it up, and log that it is ready."""
    loaded = time.perf_counter()
    cache_folder = _set_up(pipeline, settings, device, plan)
    # Fusing needs the weights resident; streamed weights take adapters instead.
    loras = LoraAdapters(pipeline) if plan.mode is MemoryMode.LOW else FusedLora(pipeline)
    warm = WarmPipeline(
        pipeline=pipeline,
        loras=loras,
        device=device,
        plan=plan,
        dtype=str(pipeline.transformer.dtype).removeprefix("torch."),
        gpu_name=device_name(device),
        **source,
    )
    warmup_seconds, compiled = _warm_up(warm)
    warm.readiness = Readiness(
        seconds=time.perf_counter() - started,
        load_seconds=loaded - started,
        warmup_seconds=warmup_seconds,
        warmup_calls=len(plan.warmup),
        compiled=compiled,
        cache_folder=cache_folder,
    )
    log.info("zimage: %s", ready_line(warm))
    return warm


def ready_line(warm: WarmPipeline) -> str:
    """Everything an operator asks of a starting worker, on one line."""
    plan, ready = warm.plan, warm.readiness
    assert ready is not None
    sizes = ", ".join(f"{width}x{height}" for width, height in plan.warmup_sizes) or "none"
    if plan.compile:
        cache = ready.cache_folder or "none (not inductor)"
        compiled = (
            f"compiled for {sizes} at batch 1-{plan.max_batch} ({plan.compile_reason}; "
            f"{ready.compiled.graphs} graphs, cache {cache}: {ready.compiled.cache_hits} hits, "
            f"{ready.compiled.cache_misses} misses)"
        )
    elif plan.warmup:
        compiled = f"not compiled ({plan.compile_reason}), warmed up at {sizes}"
    else:
        compiled = f"not compiled ({plan.compile_reason}), no warm-up"
    where = ", ".join(f"{name} {place}" for name, place in placement(warm.pipeline).items())
    return (
        f"ready in {ready.seconds:.1f} s (load {ready.load_seconds:.1f} s, warm-up "
        f"{ready.warmup_seconds:.1f} s in {ready.warmup_calls} calls) on {warm.device} "
        f"({warm.gpu_name or 'no GPU'}), {warm.dtype}; memory mode {plan.mode} "
        f"({plan.memory.reason}), up to {plan.max_batch} image(s) a call; attention "
        f"{plan.attention_backend}, {'real-valued' if plan.real_rope else 'complex'} RoPE; "
        f"{compiled}; {where}"
    )
