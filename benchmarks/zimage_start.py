"""One GPU worker's start, in a fresh process: time from spawn to ready (imports, weights, the
compile warm-up), then the first post's latency and the steady state at that post's size, as JSON.

``zimage_gpu.py`` runs it twice on one compile cache folder, cold then warm. By hand:
``python benchmarks/zimage_start.py --cache DIR --out FILE [--weights DIR] [--dry-run]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pipeline.generators.base import GenerationRequest
from pipeline.generators.sizes import NATIVE_SIZES
from pipeline.generators.zimage import ZImageGenerator
from pipeline.generators.zimage_compile import CompileCounters
from pipeline.generators.zimage_memory import MemoryChoice, MemoryMode
from pipeline.generators.zimage_plan import RuntimePlan, warmup_calls
from pipeline.generators.zimage_random import build_random_pipeline
from pipeline.generators.zimage_warm import ready_line
from pipeline.settings import Settings, get_settings

# Small stand-ins for the formats' sizes on a CPU dry run (inductor compiles for the CPU there).
DRY_RUN_SIZES = [(256, 256), (320, 256), (256, 320), (288, 352)]
# Posts a freshly started worker serves: captions it has never seen, of varied lengths.
FRESH_CAPTIONS = (
    "ryla_anna laughing at a street market in Lisbon, bright tiles, afternoon sun, 50mm photo",
    "ryla_anna in a yoga pose on a wooden deck by a lake",
    "ryla_anna at a desk by the window writing in a notebook, rain on the glass, cosy sweater, "
    "a cup of tea steaming beside her, soft grey daylight, film grain",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, required=True, help="the compile cache folder")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--label", default="start")
    parser.add_argument("--spawned-at", type=float, default=None, help="the parent's time.time()")
    parser.add_argument("--weights", type=Path, help="a Z-Image-Turbo folder; else random weights")
    parser.add_argument("--preset", choices=("full", "tiny"), default="full")
    parser.add_argument("--steady", type=int, default=5, help="posts timed after the first")
    parser.add_argument("--dry-run", action="store_true", help="tiny weights, inductor on a CPU")
    return parser.parse_args(argv)


def dry_run_plan() -> RuntimePlan:
    """What a GPU worker plans, but on a CPU: compiled with inductor, warmed up at small sizes."""
    return RuntimePlan(
        memory=MemoryChoice(MemoryMode.CPU, 2, "dry run on a CPU"),
        compile=True,
        compile_reason="dry run: inductor on the CPU",
        warmup=warmup_calls(DRY_RUN_SIZES, max_batch=2),
    )


def start_worker(settings: Settings, args: argparse.Namespace) -> ZImageGenerator:
    """Get a generator ready the way ``ryla worker --queues gpu`` does."""
    if args.weights:
        generator = ZImageGenerator(settings.model_copy(update={"zimage_path": args.weights}))
    elif args.dry_run:
        generator = ZImageGenerator(settings, build_random_pipeline("tiny"), dry_run_plan())
    else:
        # Random weights are made on the GPU in seconds; real ones are read from disk (--weights).
        pipeline = build_random_pipeline(args.preset, dtype=torch.bfloat16, device="cuda")
        generator = ZImageGenerator(
            settings, pipeline
        )  # the plan from the free memory, as a worker
    generator.load()
    return generator


def post(generator: ZImageGenerator, seed: int, size: tuple[int, int]) -> dict[str, Any]:
    request = GenerationRequest(
        post_id=seed,
        prompt=FRESH_CAPTIONS[seed % len(FRESH_CAPTIONS)],
        negative_prompt="",
        width=size[0],
        height=size[1],
        seed=seed,
    )
    return generator.generate([request])[0].meta


def serve(generator: ZImageGenerator, steady: int, size: tuple[int, int]) -> dict[str, Any]:
    """The first post after ready, then ``steady`` more at its size."""
    before = CompileCounters.now()
    first = post(generator, 1, size)
    after_first = CompileCounters.now().since(before)
    rest = [post(generator, 2 + i, size)["batch_duration_s"] for i in range(steady)]
    median = statistics.median(rest) if rest else None
    return {
        "size": f"{size[0]}x{size[1]}",
        "first_post_s": first["batch_duration_s"],
        "first_post_graphs_compiled": after_first.graphs,
        "steady_s": rest,
        "steady_median_s": median,
        "first_over_steady": round(first["batch_duration_s"] / median, 3) if median else None,
        "graphs_compiled_after_ready": CompileCounters.now().since(before).graphs,
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    spawned = args.spawned_at or time.time()
    with tempfile.TemporaryDirectory(prefix="ryla-start-") as data:
        settings = get_settings(data_dir=data, zimage_compile_cache_dir=args.cache)
        generator = start_worker(settings, args)
        ready_at = time.time()
        warm = generator.warm
        size = DRY_RUN_SIZES[2] if args.dry_run else NATIVE_SIZES["feed_portrait"]
        served = serve(generator, args.steady, size)
    readiness = asdict(warm.readiness) if warm.readiness else {}
    result = {
        "label": args.label,
        "spawn_to_ready_s": round(ready_at - spawned, 2),
        "readiness": readiness,
        "ready_line": ready_line(warm),
        "memory_mode": str(warm.plan.mode),
        "max_batch": warm.plan.max_batch,
        "compiled": warm.plan.compile,
        "warmup_calls": len(warm.plan.warmup),
        **served,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("label", "spawn_to_ready_s", "first_post_s")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
