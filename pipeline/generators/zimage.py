"""The ``zimage`` generator: Z-Image-Turbo through diffusers' ZImagePipeline, warm on one GPU.

Loaded once per process and warmed up for every format's size before it takes work; each call's
distinct captions encoded once; images batched by size, LoRA and caption length; every image
carries its provenance and cost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import diffusers
import torch
from diffusers import ZImagePipeline

from pipeline.errors import GenerationError
from pipeline.generators.base import GeneratedImage, GenerationRequest
from pipeline.generators.zimage_captions import MAX_CAPTION_TOKENS, caption_length, padded_length
from pipeline.generators.zimage_compile import CompileCounters
from pipeline.generators.zimage_device import GpuTimer, execution_device, set_vae_tiling
from pipeline.generators.zimage_memory import free_memory_gib
from pipeline.generators.zimage_plan import RuntimePlan, plan_runtime
from pipeline.generators.zimage_warm import (
    GUIDANCE_SCALE,
    NUM_INFERENCE_STEPS,
    WarmPipeline,
    prepare,
    run_pipeline,
)
from pipeline.generators.zimage_weights import availability, download_weights, resolve_weights
from pipeline.settings import Settings

__all__ = [
    "GUIDANCE_SCALE",
    "MAX_CAPTION_TOKENS",
    "NUM_INFERENCE_STEPS",
    "ZImageGenerator",
    "availability",
    "caption_length",
    "download_weights",
    "resolve_weights",
]

log = logging.getLogger(__name__)

_SHARED: dict[tuple[object, ...], WarmPipeline] = {}
_SHARED_LOCK = threading.Lock()


def _plan(settings: Settings, device: torch.device) -> RuntimePlan:
    free, total = free_memory_gib(device)  # asked before any weight reaches the GPU
    return plan_runtime(settings, device_type=device.type, free_gib=free, total_gib=total)


def _load_from_disk(settings: Settings) -> WarmPipeline:
    started = time.perf_counter()
    folder, revision = resolve_weights(settings)
    device = execution_device()
    if device.type != "cuda" and not settings.zimage_allow_cpu:
        raise GenerationError(
            "Z-Image needs a CUDA GPU and this process sees none (check CUDA_VISIBLE_DEVICES "
            "and the driver), or set RYLA_GENERATOR=preview for placeholders"
        )
    plan = _plan(settings, device)
    # bf16 on a GPU; the CPU path (tests, dry runs) computes in float32.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    pipeline = ZImagePipeline.from_pretrained(folder, dtype=dtype, local_files_only=True)
    source = {"model_id": settings.zimage_model_id, "model_revision": revision}
    return prepare(
        pipeline,
        settings=settings,
        device=device,
        plan=plan,
        source=source | {"model_path": str(folder)},
        started=started,
    )


def _shared_pipeline(settings: Settings) -> WarmPipeline:
    """One warm pipeline per process and weights, however many generator objects ask for it."""
    key = (
        str(settings.zimage_path or settings.zimage_model_id),
        settings.zimage_memory_mode,
        settings.zimage_compile,
        settings.zimage_max_batch,
    )
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = _load_from_disk(settings)
        return _SHARED[key]


def _batches(
    requests: list[GenerationRequest], max_batch: int, captions: dict[str, torch.Tensor]
) -> Iterator[list[int]]:
    """Indices of requests that can share one call: same size, same LoRA at the same scale, and
    captions of the same padded length.

    diffusers masks the padding of shorter captions correctly (a float32 test shows batch and
    single calls agree to 1e-6), but a mask costs: on CUDA the attention cannot use its flash
    kernel, and the compiled blocks need a masked variant of every graph. Equal lengths need no
    mask; carousels (one caption, several seeds) always qualify. Groups beyond ``max_batch`` are
    split, never padded: a padded image costs as much as a real one, and every batch size up to
    the limit was compiled during the warm-up.
    """
    groups: dict[tuple[int, int, str | None, float, int], list[int]] = {}
    for index, request in enumerate(requests):
        length = padded_length(len(captions[request.prompt]))
        key = (request.width, request.height, request.lora_path, request.lora_scale, length)
        groups.setdefault(key, []).append(index)
    for indices in groups.values():
        for start in range(0, len(indices), max_batch):
            yield indices[start : start + max_batch]


@contextmanager
def _gpu_errors(where: str) -> Iterator[None]:
    """Out-of-memory and other runtime errors as one GenerationError line saying what to do."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        raise GenerationError(
            f"out of GPU memory at {where}: set RYLA_ZIMAGE_MEMORY_MODE=balanced (16 GB "
            "cards) or low (4 GB), RYLA_ZIMAGE_MAX_BATCH=1, or free the GPU"
        ) from exc
    except RuntimeError as exc:
        raise GenerationError(f"Z-Image failed at {where}: {_first_line(exc)}") from exc


@dataclass(frozen=True)
class _Encoded:
    """A generator call's captions, encoded once, and each image's share of that work."""

    captions: dict[str, torch.Tensor]
    seconds_per_image: float
    peak_gib: float | None


class ZImageGenerator:
    """Z-Image-Turbo on this process's GPU.

    ``pipeline`` injects a built one (tests, benchmarks) and ``plan`` how to run it; by default
    both come from the settings, the device and its free memory.
    """

    name = "zimage"

    def __init__(
        self, settings: Settings, pipeline: Any = None, plan: RuntimePlan | None = None
    ) -> None:
        self._settings = settings
        self._injected = pipeline
        self._plan = plan
        self._warm: WarmPipeline | None = None

    def load(self) -> None:
        """Load, place, compile and warm up; later calls return at once."""
        if self._warm is not None:
            return
        if self._injected is None:
            self._warm = _shared_pipeline(self._settings)
            return
        device = execution_device()
        self._warm = prepare(
            self._injected,
            settings=self._settings,
            device=device,
            plan=self._plan or _plan(self._settings, device),
            source={"model_id": "injected", "model_revision": None, "model_path": None},
            started=time.perf_counter(),
        )

    @property
    def pipeline(self) -> Any:
        return self._loaded().pipeline

    @property
    def warm(self) -> WarmPipeline:
        """The set-up pipeline, its plan and how it got ready (loads on first use)."""
        return self._loaded()

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """One image per request, in order; batch members match what each would give alone, to
        rounding."""
        if not requests:
            return []
        warm = self._loaded()
        encoded = self._encode(warm, requests)
        results: dict[int, GeneratedImage] = {}
        for indices in _batches(requests, warm.plan.max_batch, encoded.captions):
            images = self._generate_batch([requests[index] for index in indices], encoded)
            results.update(zip(indices, images, strict=True))
        return [results[index] for index in range(len(requests))]

    def _encode(self, warm: WarmPipeline, requests: list[GenerationRequest]) -> _Encoded:
        """Every distinct caption once, before the pipeline calls: a carousel split over several
        calls, or posts sharing a caption, pay for one encoding (one stream of the encoder's
        weights when it is streamed)."""
        where = f"encoding {len(requests)} caption(s), memory mode {warm.plan.mode}"
        with _gpu_errors(where), GpuTimer(warm.device) as timer:
            captions = warm.encode([request.prompt for request in requests])
        return _Encoded(captions, timer.seconds / len(requests), timer.peak_gib)

    def _loaded(self) -> WarmPipeline:
        self.load()
        assert self._warm is not None
        return self._warm

    def _generate_batch(
        self, batch: list[GenerationRequest], encoded: _Encoded
    ) -> list[GeneratedImage]:
        warm, first = self._loaded(), batch[0]
        lora = warm.loras.activate(first.lora_path, first.lora_scale)
        tiled = set_vae_tiling(warm.pipeline, first.width, first.height)
        before = CompileCounters.now()
        where = f"{first.width}x{first.height}, batch {len(batch)}, memory mode {warm.plan.mode}"
        with _gpu_errors(where), GpuTimer(warm.device) as timer:
            images = run_pipeline(
                warm,
                [encoded.captions[request.prompt] for request in batch],
                [request.seed for request in batch],
                (first.width, first.height),
            )
        # The call's time with its images' share of the encoding: what the batch cost.
        seconds = timer.seconds + encoded.seconds_per_image * len(batch)
        peaks = [peak for peak in (timer.peak_gib, encoded.peak_gib) if peak is not None]
        peak = max(peaks, default=None)
        compiled = CompileCounters.now().since(before).graphs
        if compiled:
            log.warning(
                "zimage: %d graph(s) compiled while a post waited (%dx%d, batch %d): the "
                "warm-up missed this shape",
                compiled,
                first.width,
                first.height,
                len(batch),
            )
        log.info(
            "zimage: %d image(s) %dx%d in %.2f s (%.2f s/image), peak GPU memory %s GiB",
            len(batch),
            first.width,
            first.height,
            seconds,
            seconds / len(batch),
            _round(peak, 2),
        )
        shared = {
            "lora": lora,
            "vae_tiling": tiled,
            "batch_size": len(batch),
            "graphs_compiled_during_call": compiled,
            "encode_share_s": round(encoded.seconds_per_image, 4),
            "batch_duration_s": round(seconds, 4),
            "peak_gpu_memory_gib": _round(peak, 3),
        }
        return [
            GeneratedImage(image=image, meta=self._meta(warm, request, seconds, shared))
            for request, image in zip(batch, images, strict=True)
        ]

    def _meta(
        self,
        warm: WarmPipeline,
        request: GenerationRequest,
        batch_seconds: float,
        shared: dict[str, Any],
    ) -> dict[str, Any]:
        seconds = batch_seconds / shared["batch_size"]  # this image's share of the call
        return {
            "generator": self.name,
            "preview": False,
            "model_id": warm.model_id,
            "model_revision": warm.model_revision,
            "model_path": warm.model_path,
            "diffusers_version": diffusers.__version__,
            "dtype": warm.dtype,
            "steps": NUM_INFERENCE_STEPS,
            "guidance": GUIDANCE_SCALE,
            "seed": request.seed,
            "width": request.width,
            "height": request.height,
            **shared,
            "memory_mode": str(warm.plan.mode),
            "compiled": warm.plan.compile,
            "duration_s": round(seconds, 4),
            "device": str(warm.device),
            "gpu_name": warm.gpu_name,
            "cost": round(self._settings.gpu_cost_per_hour * seconds / 3600, 6),
            "gpu_cost_per_hour": self._settings.gpu_cost_per_hour,
        }


def _first_line(exc: BaseException) -> str:
    """The exception as one line: its first line, and its last when that adds the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return text[:300]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
