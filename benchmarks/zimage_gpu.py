"""Z-Image-Turbo speed and memory on one GPU: eager SDPA, best attention, compile, batch, 16 GB.

One call: ``python benchmarks/zimage_gpu.py [--weights DIR] [--out-dir DIR]``; ``--dry-run``: CPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pipeline.generators.base import GenerationRequest
from pipeline.generators.zimage import ZImageGenerator
from pipeline.generators.zimage_device import (
    GIB,
    compile_repeated_blocks,
    device_name,
    set_attention_backend,
)
from pipeline.generators.zimage_random import build_random_pipeline
from pipeline.settings import get_settings

log = logging.getLogger("zimage_gpu")

RESULTS = Path(__file__).resolve().parent / "results"
# Fastest first; each is tried and kept only if it runs here. The *_hub ones need the network.
ATTENTION_CANDIDATES = ("_flash_3", "flash", "_native_cudnn", "_native_flash", "_native_efficient")
CAP_GIB = 16
# Realistic captions of different lengths, so batches exercise the padded, masked attention path.
PROMPTS = (
    "ryla_anna, a woman with auburn hair reading in a sunlit cafe, 35mm film photo, soft light",
    "ryla_anna on a rooftop at dusk, city lights behind her, candid smile, shot on a phone",
    "ryla_anna hiking a misty mountain trail, green jacket, morning fog",
    "ryla_anna cooking pasta in a small kitchen, steam rising, warm tungsten light, close up",
)
TARGETS = {
    "batch1_s_per_image_max": 0.75,
    "batched_images_per_s_min": 1.5,
    "mode16_peak_gib_max": 16.0,
}


@dataclass
class Run:
    """One measured configuration: the median over the timed calls after the warm-up."""

    name: str
    backend: str
    batch: int
    compiled: bool
    memory_mode: str
    s_per_image: float | None = None
    images_per_s: float | None = None
    peak_gib: float | None = None
    images: int = 0
    warmup_s: float | None = None
    note: str = ""
    error: str | None = None
    call_seconds: list[float] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, help="a Z-Image-Turbo folder; else random weights")
    parser.add_argument("--preset", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--images", type=int, default=10, help="timed images per configuration")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--skip", default="", help="comma list: attention,batch,compile,mode16")
    parser.add_argument("--dry-run", action="store_true", help="the tiny preset at 256 px on a CPU")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.preset, args.device, args.size = "tiny", "cpu", 256
    args.skip = {part for part in args.skip.split(",") if part}
    return args


def build_pipeline(args: argparse.Namespace) -> tuple[Any, str]:
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    started = time.perf_counter()
    if args.weights:
        from diffusers import ZImagePipeline

        pipeline = ZImagePipeline.from_pretrained(args.weights, dtype=dtype, local_files_only=True)
        source = f"weights {args.weights}"
    else:
        pipeline = build_random_pipeline(args.preset, dtype=dtype, device=args.device)
        source = f"random {args.preset} preset"
    log.info("built %s (%s) in %.1f s", source, dtype, time.perf_counter() - started)
    return pipeline, source


def requests_for(count: int, size: int, first_seed: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            post_id=first_seed + i,
            prompt=PROMPTS[i % len(PROMPTS)],
            negative_prompt="",
            width=size,
            height=size,
            seed=first_seed + i,
        )
        for i in range(count)
    ]


def timed_call(
    generator: ZImageGenerator, batch: int, size: int, seed: int
) -> tuple[float, float | None]:
    """Seconds and peak GiB of one pipeline call, as the generator itself recorded them."""
    meta = generator.generate(requests_for(batch, size, seed))[0].meta
    return meta["batch_duration_s"], meta["peak_gpu_memory_gib"]


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def measure(generator: ZImageGenerator, run: Run, args: argparse.Namespace, warmups: int) -> Run:
    started = time.perf_counter()
    for i in range(warmups):
        timed_call(generator, run.batch, args.size, seed=10_000 + i)
    run.warmup_s = round(time.perf_counter() - started, 2)
    calls = -(-args.images // run.batch)  # ceil: at least args.images images
    compiled_before = graphs_compiled()
    results = [
        timed_call(generator, run.batch, args.size, seed=i * run.batch) for i in range(calls)
    ]
    if recompiled := graphs_compiled() - compiled_before:
        run.note = f"{run.note}; {recompiled} graph(s) compiled while timed".lstrip("; ")
    return summarise(run, results)


def summarise(run: Run, results: list[tuple[float, float | None]]) -> Run:
    run.call_seconds = [round(seconds, 4) for seconds, _ in results]
    median = statistics.median(run.call_seconds)
    run.s_per_image = round(median / run.batch, 4)
    run.images_per_s = round(run.batch / median, 3)
    peaks = [peak for _, peak in results if peak is not None]
    run.peak_gib = round(max(peaks), 3) if peaks else None
    run.images = len(results) * run.batch
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


def probe_backends(generator: ZImageGenerator, runs: list[Run], args: argparse.Namespace) -> str:
    """Time each usable attention backend briefly; return the fastest (``native`` if none runs)."""
    transformer = generator.pipeline.transformer
    short = argparse.Namespace(**{**vars(args), "images": 3})
    best, best_time = "native", next(r.s_per_image for r in runs if r.name == "eager_sdpa_b1")
    for backend in ATTENTION_CANDIDATES:
        run = Run(f"probe_{backend}", backend, 1, False, generator.memory_mode)

        def probe(run: Run = run, backend: str = backend) -> Run:
            set_attention_backend(transformer, backend)
            return measure(generator, run, short, warmups=1)

        attempt(runs, run, probe)
        if run.error is None and (best_time is None or (run.s_per_image or 1e9) < best_time):
            best, best_time = backend, run.s_per_image
    set_attention_backend(transformer, best)
    return best


def batched(
    generator: ZImageGenerator, runs: list[Run], args: Any, backend: str, compiled: bool
) -> None:
    """Batches 2 and 4; where the backend fails (flash has no mask for padded batches), native."""
    for size in (2, 4):
        tag = "compiled_" if compiled else ""
        run = Run(f"{tag}batch{size}", backend, size, compiled, generator.memory_mode)
        attempt(runs, run, lambda run=run: measure(generator, run, args, warmups=1))
        if run.error and backend != "native":
            set_attention_backend(generator.pipeline.transformer, "native")
            retry = Run(f"{tag}batch{size}", "native", size, compiled, generator.memory_mode)
            retry.note = f"{backend} failed on this padded batch"
            attempt(runs, retry, lambda retry=retry: measure(generator, retry, args, warmups=1))
            set_attention_backend(generator.pipeline.transformer, backend)


def compiled_runs(generator: ZImageGenerator, runs: list[Run], args: Any, backend: str) -> None:
    """Regional compile of the repeated blocks, after the eager calls above (see FACTS)."""
    compile_repeated_blocks(generator.pipeline.transformer)
    run = Run("compiled_b1", backend, 1, True, generator.memory_mode, note="warm-up compiles")
    attempt(runs, run, lambda: measure(generator, run, args, warmups=2))
    if "batch" not in args.skip:
        batched(generator, runs, args, backend, compiled=True)


def mode16(pipeline: Any, runs: list[Run], args: argparse.Namespace, backend: str) -> None:
    """Model CPU offload under a hard 16 GiB cap on this process's share of the card."""
    device = torch.device(args.device)
    compiled = "compile" not in args.skip  # compiled blocks stay compiled
    run = Run("offload_16gib_b1", backend, 1, compiled, "offload")
    if device.type != "cuda":
        run.error = "skipped: needs CUDA (the cap and offload are GPU features)"
        runs.append(run)
        return
    pipeline.to("cpu")
    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(CAP_GIB * GIB / total, device)
    settings = get_settings(zimage_memory_mode="offload")
    generator = ZImageGenerator(settings, pipeline=pipeline)
    run.note = f"cap {CAP_GIB} GiB of {total / GIB:.0f} GiB"
    attempt(runs, run, lambda: measure(generator, run, args, warmups=1))
    run.note += f"; peak reserved {torch.cuda.max_memory_reserved(device) / GIB:.2f} GiB"


def run_all(args: argparse.Namespace) -> tuple[list[Run], dict[str, Any]]:
    pipeline, source = build_pipeline(args)
    generator = ZImageGenerator(get_settings(zimage_memory_mode="full"), pipeline=pipeline)
    generator.load()
    runs: list[Run] = []
    eager = Run("eager_sdpa_b1", "native", 1, False, generator.memory_mode)
    attempt(runs, eager, lambda: measure(generator, eager, args, warmups=2))
    backend = "native"
    if "attention" not in args.skip:
        backend = probe_backends(generator, runs, args)
        best = Run("best_attention_b1", backend, 1, False, generator.memory_mode)
        attempt(runs, best, lambda: measure(generator, best, args, warmups=1))
    if "batch" not in args.skip:
        batched(generator, runs, args, backend, compiled=False)
    if "compile" not in args.skip:
        compiled_runs(generator, runs, args, backend)
    if "mode16" not in args.skip:
        mode16(generator.pipeline, runs, args, backend)
    return runs, {"source": source, "memory_mode": str(generator.memory_mode)}


def environment(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    return {
        "device": args.device,
        "device_name": device_name(device) or platform.processor() or "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "preset": args.preset,
        "size": f"{args.size}x{args.size}",
        "steps": 8,
        "guidance": 0.0,
        "dtype": "bfloat16" if device.type == "cuda" else "float32",
        "images_per_configuration": args.images,
    }


def format_row(run: Run) -> str:
    def show(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    figures = (
        f"{show(run.s_per_image, 3):>8} {show(run.images_per_s, 2):>7} {show(run.peak_gib, 2):>7}"
    )
    tail = run.error or run.note
    flags = f"{run.batch:>2} {'yes' if run.compiled else 'no':>3} {run.memory_mode:>7}"
    return f"{run.name:<22} {run.backend:<18} {flags} {figures}  {tail}"


def print_table(env: dict[str, Any], runs: list[Run]) -> None:
    print(f"\nZ-Image-Turbo, {env['size']}, 8 steps, {env['dtype']}, on {env['device_name']}")
    header = f"{'configuration':<22} {'attention':<18} {'b':>2} cmp {'mode':>7}"
    print(f"{header} {'s/image':>8} {'img/s':>7} {'peak GiB':>8}  note")
    for run in runs:
        print(format_row(run))
    print(f"targets: {json.dumps(TARGETS)}")


def output_path(args: argparse.Namespace, env: dict[str, Any]) -> Path:
    if args.dry_run:
        return args.out_dir / "zimage_gpu_dryrun_cpu.json"
    slug = re.sub(r"[^a-z0-9]+", "-", env["device_name"].lower()).strip("-")
    return args.out_dir / f"zimage_gpu_{slug}_{args.preset}.json"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    env = environment(args)
    started = time.perf_counter()
    runs, about = run_all(args)
    env |= about | {"total_s": round(time.perf_counter() - started, 1), "targets": TARGETS}
    print_table(env, runs)
    path = output_path(args, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**env, "runs": [asdict(run) for run in runs]}, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
