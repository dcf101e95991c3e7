"""Z-Image-Turbo on one GPU through the production generator: every memory mode eager and
compiled (balanced under a 16 GiB cap, low under 4 GiB), the real-valued against the complex
RoPE, batches, and a worker's start (time to ready with a cold then a warm compile cache, the
first post after it). Prints a table and the targets; writes JSON under ``benchmarks/results/``.

On a GPU machine, in one call of under 9 minutes (the device tool; its README has the details).
Once, here, from the repository root (the device lacks diffusers and pydantic):

    echo /.whl/ >> "$(git rev-parse --git-common-dir)/info/exclude"
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 pydantic==2.14.4 \\
        pydantic-core==2.50.5 pydantic-settings==2.16.3 annotated-types==0.8.0 \\
        typing-inspection==0.4.5 python-dotenv==1.2.4 importlib-metadata==10.2.0 \\
        typing-extensions==4.16.0

then ``run`` with carry [".whl"] and timeout_s 600:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; \\
    PYTHONUNBUFFERED=1 python3 benchmarks/zimage_gpu.py --quick --out-dir $OUT

and copy ``$OUT/zimage_gpu_*.json`` into ``benchmarks/results/``. ``--quick`` times 4 images a
row and starts no row after 450 s (a skipped row says so). Without a GPU:
``python benchmarks/zimage_gpu.py --dry-run`` (tiny weights, 256 px, inductor on the CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import diffusers
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.zimage_rows import Run, format_row
from benchmarks.zimage_sections import Bench, run_rows
from pipeline.generators.zimage_device import device_name

log = logging.getLogger("zimage_gpu")

RESULTS = Path(__file__).resolve().parent / "results"
START_SCRIPT = Path(__file__).resolve().parent / "zimage_start.py"
# The numbers, for one H100/H200 at 1024², batch 1, warm.
TARGETS = {
    "production_s_per_image_max": 0.80,
    "balanced_over_full_max": 1.15,
    "balanced_peak_gib_max": 16.0,
    "low_over_full_max": 2.0,
    "low_peak_gib_max": 4.0,
    "ready_warm_cache_s_max": 60.0,
    "first_post_over_steady_max": 1.2,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="a Z-Image-Turbo folder; else random weights")
    parser.add_argument("--preset", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--images", type=int, default=10, help="timed images per row")
    parser.add_argument("--budget-s", type=float, default=3600, help="no new row after this")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--skip", default="", help="comma list of: start,modes,rope,batch")
    parser.add_argument("--quick", action="store_true", help="4 images a row, 450 s budget")
    parser.add_argument("--dry-run", action="store_true", help="tiny weights at 256 px on a CPU")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.budget_s = 4, 450
    if args.dry_run:
        args.preset, args.device, args.size, args.images = "tiny", "cpu", 256, min(args.images, 4)
    args.skip = {part for part in args.skip.split(",") if part}
    return args


def worker_starts(args: argparse.Namespace, deadline: float, cache: Path) -> list[dict[str, Any]]:
    """A worker started twice on one compile cache: first empty (cold), then filled (warm)."""
    results: list[dict[str, Any]] = []
    for label in ("cold", "warm"):
        left = deadline - time.monotonic()
        if left < 60:
            results.append({"label": label, "error": "skipped: time budget"})
            continue
        out = cache.parent / f"{cache.name}-{label}.json"
        command = [sys.executable, str(START_SCRIPT), "--cache", str(cache), "--out", str(out)]
        command += ["--label", label, "--spawned-at", str(time.time())]
        command += ["--dry-run"] if args.dry_run else ["--preset", args.preset]
        command += ["--weights", str(args.weights)] if args.weights else []
        command += ["--steady", "3" if args.images <= 4 else "5"]
        try:
            subprocess.run(command, check=True, timeout=min(left, 420))
            results.append(json.loads(out.read_text()))
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            results.append({"label": label, "error": f"{type(exc).__name__}: {exc}"[:300]})
        log.info("worker start (%s cache): %s", label, results[-1].get("spawn_to_ready_s"))
    return results


def row(runs: list[Run], name: str) -> Run | None:
    return next((run for run in runs if run.name == name and run.error is None), None)


def verdicts(runs: list[Run], starts: list[dict[str, Any]]) -> dict[str, Any]:
    """Each target with the measured value and whether it is met (None: not measured)."""
    full, balanced, low = row(runs, "full_compiled"), row(runs, "balanced_compiled"), None
    low = row(runs, "low_eager")
    warm = next((s for s in starts if s.get("label") == "warm" and "error" not in s), None)

    def ratio(part: Run | None) -> float | None:
        if part is None or full is None or not part.s_per_image or not full.s_per_image:
            return None
        return round(part.s_per_image / full.s_per_image, 3)

    measured = {
        "production_s_per_image_max": full.s_per_image if full else None,
        "balanced_over_full_max": ratio(balanced),
        "balanced_peak_gib_max": balanced.peak_reserved_gib if balanced else None,
        "low_over_full_max": ratio(low),
        "low_peak_gib_max": low.peak_reserved_gib if low else None,
        "ready_warm_cache_s_max": warm["spawn_to_ready_s"] if warm else None,
        "first_post_over_steady_max": warm["first_over_steady"] if warm else None,
    }
    return {
        key: {
            "target": TARGETS[key],
            "measured": value,
            "met": None if value is None else value <= TARGETS[key],
        }
        for key, value in measured.items()
    }


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
        "weights": str(args.weights) if args.weights else "random",
        "size": f"{args.size}x{args.size}",
        "steps": 8,
        "guidance": 0.0,
        "dtype": "bfloat16" if device.type == "cuda" else "float32",
        "images_per_row": args.images,
        "quick": args.quick,
    }


def print_report(report: dict[str, Any], runs: list[Run]) -> None:
    print(f"\nZ-Image-Turbo, {report['size']}, 8 steps, {report['dtype']}, {report['device_name']}")
    print(
        f"{'row':<30} {'mode':>8} {'cmp':>4} {'rope':>7} {'b':>2} {'s/image':>8} {'img/s':>6} "
        f"{'peak GiB':>8} {'cap':>4}  note"
    )
    for run in runs:
        print(format_row(run))
    for start in report.get("worker_starts", []):
        print(
            f"worker start, {start.get('label')} cache: ready {start.get('spawn_to_ready_s')} s, "
            f"first post {start.get('first_post_s')} s, steady {start.get('steady_median_s')} s"
            f"{', ' + start['error'] if 'error' in start else ''}"
        )
    for name, check in report.get("checks", {}).items():
        print(f"check {name}: {json.dumps(check)}")
    targets = report.get("targets", {})
    if isinstance(targets, str):
        print(f"targets: {targets}")
        return
    for name, verdict in targets.items():
        print(f"target {name}: {json.dumps(verdict)}")


def output_path(args: argparse.Namespace, env: dict[str, Any]) -> Path:
    if args.dry_run:
        return args.out_dir / "zimage_gpu_dryrun_cpu.json"
    slug = re.sub(r"[^a-z0-9]+", "-", env["device_name"].lower()).strip("-")
    return args.out_dir / f"zimage_gpu_{slug}_{args.preset}.json"


def save(path: Path, report: dict[str, Any], runs: list[Run]) -> None:
    """Written after every section: a run cut short still leaves what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report, "runs": [asdict(run) for run in runs]}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.budget_s
    report: dict[str, Any] = {**environment(args), "targets_wanted": TARGETS}
    path, runs = output_path(args, report), []
    # One cache for the whole run: the rows after the worker starts reuse what they compiled.
    cache = Path(tempfile.mkdtemp(prefix="ryla-compile-cache-"))
    if "start" not in args.skip:
        report["worker_starts"] = worker_starts(args, deadline, cache)
        save(path, report, runs)
    bench = Bench(args=args, deadline=deadline, runs=runs, checks={}, cache=cache)
    run_rows(bench, on_section=lambda: save(path, report | {"checks": bench.checks}, runs))
    report |= {"checks": bench.checks, "total_s": round(time.monotonic() - started, 1)}
    if args.dry_run:
        report["targets"] = "not judged: the targets are for an H100/H200, this was a CPU"
    else:
        report["targets"] = verdicts(runs, report.get("worker_starts", []))
    save(path, report, runs)
    print_report(report, runs)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
