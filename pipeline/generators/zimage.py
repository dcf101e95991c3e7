"""The ``zimage`` generator: Z-Image-Turbo through diffusers' ZImagePipeline, warm on one GPU.

Loaded once per process; batched by size and LoRA; every image carries its provenance and cost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import ZImagePipeline
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from pipeline.errors import GenerationError, WeightsMissing
from pipeline.generators.base import GeneratedImage, GenerationRequest
from pipeline.generators.zimage_device import (
    GpuTimer,
    MemoryMode,
    choose_memory_mode,
    cuda_device_count,
    device_name,
    execution_device,
    place_pipeline,
    set_vae_tiling,
)
from pipeline.generators.zimage_lora import LoraAdapters
from pipeline.settings import Settings

__all__ = [
    "GUIDANCE_SCALE",
    "MAX_BATCH",
    "NUM_INFERENCE_STEPS",
    "ZImageGenerator",
    "availability",
    "download_weights",
    "resolve_weights",
]

log = logging.getLogger(__name__)

# diffusers >= 0.39 counts steps as transformer evaluations: 8 gives the 8 forwards that the model
# card's "9 steps" meant on older releases (9 now runs 9, on a different schedule).
NUM_INFERENCE_STEPS = 8
# Turbo is distilled to run without classifier-free guidance. The pipeline defaults to 5.0, and any
# value > 0 turns CFG on: the batch doubles and so does the work. Always pass 0.0.
GUIDANCE_SCALE = 0.0
# Images per pipeline call; more buys little throughput at 1 MP and risks the memory headroom.
MAX_BATCH = 4

_PARTS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")
_WEIGHTED_PARTS = ("text_encoder", "transformer", "vae")
_DOWNLOAD_PATTERNS = ["model_index.json", *(f"{part}/*" for part in _PARTS)]
_HOW_TO_GET = (
    "run `ryla model download` on a machine with internet (then copy the Hugging Face cache "
    "or the folder here), or set RYLA_ZIMAGE_PATH to a folder holding the weights"
)


# --- weights ---------------------------------------------------------------------------------


def _missing_shards(part: Path) -> list[str]:
    missing = []
    for index in part.glob("*.safetensors.index.json"):
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        missing += [name for name in sorted(shards) if not (part / name).exists()]
    return missing


def _incomplete(folder: Path) -> str | None:
    """What is missing from a weights folder, or None when it looks complete."""
    if not (folder / "model_index.json").is_file():
        return "no model_index.json"
    for part in _PARTS:
        if not (folder / part).is_dir():
            return f"no {part}/ folder"
    for part in _WEIGHTED_PARTS:
        if not any((folder / part).glob("*.safetensors")):
            return f"no {part}/*.safetensors"
        if missing := _missing_shards(folder / part):
            return f"{part}/ lacks {len(missing)} shard(s), e.g. {missing[0]}"
    return None


def _cached_snapshot(settings: Settings) -> Path:
    repo = f"{settings.zimage_model_id}@{settings.zimage_revision or 'main'}"
    try:
        folder = snapshot_download(
            settings.zimage_model_id,
            revision=settings.zimage_revision,
            allow_patterns=_DOWNLOAD_PATTERNS,
            local_files_only=True,  # never reaches the network: the cache either has it or not
        )
    except (OSError, ValueError) as exc:
        raise WeightsMissing(
            f"Z-Image weights {repo} are not in the Hugging Face cache: {_HOW_TO_GET}"
        ) from exc
    return Path(folder)


def resolve_weights(settings: Settings) -> tuple[Path, str | None]:
    """The local weights folder and its revision, or WeightsMissing saying how to get them."""
    if settings.zimage_path is not None:
        folder, revision = settings.zimage_path.expanduser(), settings.zimage_revision
        where = f"RYLA_ZIMAGE_PATH={folder}"
    else:
        folder = _cached_snapshot(settings)
        revision = folder.name  # the snapshot folder is named after the commit: exact provenance
        where = f"{settings.zimage_model_id} in the Hugging Face cache ({folder})"
    if problem := _incomplete(folder):
        raise WeightsMissing(
            f"Z-Image weights at {where} are incomplete ({problem}): {_HOW_TO_GET}"
        )
    return folder, revision


def availability(settings: Settings) -> tuple[bool, str]:
    """Whether this process can run Z-Image (a CUDA GPU and local weights), and why not.

    Fork-safe: asks NVML for the GPU count and reads the disk, so no CUDA context is created.
    """
    count = cuda_device_count()
    if not count:
        return False, "no CUDA device is visible"
    try:
        folder, _ = resolve_weights(settings)
    except WeightsMissing as exc:
        return False, str(exc)
    return True, f"{count} CUDA device(s), weights in {folder}"


def download_weights(settings: Settings) -> Path:
    """Fetch the settings' repo id and revision into RYLA_ZIMAGE_PATH, or else the HF cache."""
    local_dir = settings.zimage_path.expanduser() if settings.zimage_path else None
    repo = f"{settings.zimage_model_id}@{settings.zimage_revision or 'main'}"
    try:
        folder = Path(
            snapshot_download(
                settings.zimage_model_id,
                revision=settings.zimage_revision,
                allow_patterns=_DOWNLOAD_PATTERNS,
                local_dir=local_dir,
            )
        )
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise GenerationError(
            f"could not download {repo}: {exc}; check the network, the repo id and HF_TOKEN"
        ) from exc
    if problem := _incomplete(folder):
        raise GenerationError(f"downloaded {repo} to {folder} but it is incomplete ({problem})")
    log.info("zimage: weights %s in %s", repo, folder)
    return folder


# --- the warm pipeline -----------------------------------------------------------------------


@dataclass
class _Warm:
    """A loaded pipeline and what is recorded about it on every image."""

    pipeline: Any
    loras: LoraAdapters
    device: torch.device
    memory_mode: MemoryMode
    model_id: str
    model_revision: str | None
    model_path: str | None
    dtype: str
    gpu_name: str | None
    load_seconds: float


_SHARED: dict[tuple[str, str], _Warm] = {}
_SHARED_LOCK = threading.Lock()


def _warm_up(
    pipeline: Any, settings: Settings, device: torch.device, source: dict[str, Any]
) -> _Warm:
    started = time.perf_counter()
    mode, why = choose_memory_mode(settings.zimage_memory_mode, device)
    if pipeline is None:
        # bf16 on a GPU; the CPU path (tests, dry runs) computes in float32.
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        pipeline = ZImagePipeline.from_pretrained(
            source["model_path"], dtype=dtype, local_files_only=True
        )
    place_pipeline(pipeline, mode, device)
    pipeline.set_progress_bar_config(disable=True)
    warm = _Warm(
        pipeline=pipeline,
        loras=LoraAdapters(pipeline),
        device=device,
        memory_mode=mode,
        dtype=str(pipeline.transformer.dtype).removeprefix("torch."),
        gpu_name=device_name(device),
        load_seconds=time.perf_counter() - started,
        **source,
    )
    log.info(
        "zimage: ready in %.1f s on %s (%s), memory mode %s (%s), %s weights",
        warm.load_seconds,
        device,
        warm.gpu_name,
        mode,
        why,
        warm.dtype,
    )
    return warm


def _load_from_disk(settings: Settings) -> _Warm:
    folder, revision = resolve_weights(settings)
    device = execution_device()
    if device.type != "cuda" and not settings.zimage_allow_cpu:
        raise GenerationError(
            "Z-Image needs a CUDA GPU and this process sees none (check CUDA_VISIBLE_DEVICES "
            "and the driver), or set RYLA_GENERATOR=preview for placeholders"
        )
    source = {
        "model_id": settings.zimage_model_id,
        "model_revision": revision,
        "model_path": str(folder),
    }
    return _warm_up(None, settings, device, source)


def _shared_pipeline(settings: Settings) -> _Warm:
    """One warm pipeline per process and weights, however many generator objects ask for it."""
    key = (str(settings.zimage_path or settings.zimage_model_id), settings.zimage_memory_mode)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = _load_from_disk(settings)
        return _SHARED[key]


def _batches(requests: list[GenerationRequest]) -> Iterator[list[int]]:
    """Indices of requests that can share one call: same size and same LoRA at the same scale."""
    groups: dict[tuple[int, int, str | None, float], list[int]] = {}
    for index, request in enumerate(requests):
        key = (request.width, request.height, request.lora_path, request.lora_scale)
        groups.setdefault(key, []).append(index)
    for indices in groups.values():
        for start in range(0, len(indices), MAX_BATCH):
            yield indices[start : start + MAX_BATCH]


class ZImageGenerator:
    """Z-Image-Turbo on this process's GPU; ``pipeline`` injects a ready one (tests, benchmarks)."""

    name = "zimage"

    def __init__(self, settings: Settings, pipeline: Any = None) -> None:
        self._settings = settings
        self._injected = pipeline
        self._warm: _Warm | None = None

    def load(self) -> None:
        """Load the weights and place them per the memory mode; later calls return at once."""
        if self._warm is not None:
            return
        if self._injected is None:
            self._warm = _shared_pipeline(self._settings)
            return
        source = {"model_id": "injected", "model_revision": None, "model_path": None}
        self._warm = _warm_up(self._injected, self._settings, execution_device(), source)

    @property
    def pipeline(self) -> Any:
        return self._loaded().pipeline

    @property
    def memory_mode(self) -> MemoryMode:
        return self._loaded().memory_mode

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """One image per request, in order; batch members match what each would give alone."""
        results: dict[int, GeneratedImage] = {}
        for indices in _batches(requests):
            images = self._generate_batch([requests[index] for index in indices])
            results.update(zip(indices, images, strict=True))
        return [results[index] for index in range(len(requests))]

    def _loaded(self) -> _Warm:
        self.load()
        assert self._warm is not None
        return self._warm

    def _generate_batch(self, batch: list[GenerationRequest]) -> list[GeneratedImage]:
        warm, first = self._loaded(), batch[0]
        lora = warm.loras.activate(first.lora_path, first.lora_scale)
        tiled = set_vae_tiling(warm.pipeline, first.width, first.height)
        with GpuTimer(warm.device) as timer:
            images = self._call_pipeline(warm, batch)
        log.info(
            "zimage: %d image(s) %dx%d in %.2f s (%.2f s/image), peak GPU memory %s GiB",
            len(batch),
            first.width,
            first.height,
            timer.seconds,
            timer.seconds / len(batch),
            _round(timer.peak_gib, 2),
        )
        shared = {"lora": lora, "vae_tiling": tiled, "batch_size": len(batch)}
        return [
            GeneratedImage(image=image, meta=self._meta(warm, request, timer, shared))
            for request, image in zip(batch, images, strict=True)
        ]

    def _call_pipeline(self, warm: _Warm, batch: list[GenerationRequest]) -> list[Any]:
        # A CPU generator per image: the noise depends on its seed only, not on the batch or card.
        generators = [torch.Generator("cpu").manual_seed(request.seed) for request in batch]
        first = batch[0]
        try:
            output = warm.pipeline(
                prompt=[request.prompt for request in batch],
                height=first.height,
                width=first.width,
                num_inference_steps=NUM_INFERENCE_STEPS,
                guidance_scale=GUIDANCE_SCALE,  # also why negative prompts are not passed: no CFG
                generator=generators,
                output_type="pil",
            )
        except torch.cuda.OutOfMemoryError as exc:
            raise GenerationError(
                f"out of GPU memory at {first.width}x{first.height}, batch {len(batch)}, memory "
                f"mode {warm.memory_mode}: set RYLA_ZIMAGE_MEMORY_MODE=offload or use a bigger GPU"
            ) from exc
        except RuntimeError as exc:
            raise GenerationError(
                f"Z-Image failed at {first.width}x{first.height}, batch {len(batch)}: "
                f"{_first_line(exc)}"
            ) from exc
        return list(output.images)

    def _meta(
        self, warm: _Warm, request: GenerationRequest, timer: GpuTimer, shared: dict[str, Any]
    ) -> dict[str, Any]:
        seconds = timer.seconds / shared["batch_size"]  # this image's share of the call
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
            "memory_mode": str(warm.memory_mode),
            "duration_s": round(seconds, 4),
            "batch_duration_s": round(timer.seconds, 4),
            "device": str(warm.device),
            "gpu_name": warm.gpu_name,
            "peak_gpu_memory_gib": _round(timer.peak_gib, 3),
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
