"""Where one Z-Image image's time goes: the prompt's encoding, the transformer's steps, the VAE
decode and the rest (scheduler, latents, the PIL image), timed with CUDA events inside the
production generator (compiled as a worker compiles, real-valued RoPE, 1024², batch 1), in
``full`` mode or ``balanced`` under a 16 GiB cap. Three phases, side by side in one process:
the captions encoded as diffusers encodes them (in each call, padded to 512 tokens), as workers
encode them (once per generator call, at their own length), and then with the text encoder
compiled (full mode) or streamed a decoder layer at a time instead of a linear layer at a time
(balanced; its first phase also streams the token table, as workers did before). Prints a
table and writes JSON.

On a GPU machine (carry the wheels as ``zimage_gpu.py``'s docstring says):

    PYTHONUNBUFFERED=1 python3 benchmarks/zimage_stages.py --out-dir $OUT
    PYTHONUNBUFFERED=1 python3 benchmarks/zimage_stages.py --mode balanced --out-dir $OUT

Without one: ``python benchmarks/zimage_stages.py --dry-run`` (tiny weights, 256 px, CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.zimage_rows import (
    generator_for,
    memory_cap,
    plan_for,
    remove_offloading,
    requests,
)
from pipeline.generators.zimage import ZImageGenerator
from pipeline.generators.zimage_device import device_name
from pipeline.generators.zimage_memory import HostEmbedding, MemoryMode, stream
from pipeline.generators.zimage_random import Preset, build_random_pipeline
from pipeline.generators.zimage_warm import WarmPipeline
from pipeline.settings import get_settings

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("encode_prompt", "transformer", "vae_decode")
log = logging.getLogger("zimage_stages")


class StageTimer:
    """Times every call of the wrapped methods on the device's own clock."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.spans: dict[str, list[tuple[Any, Any]]] = defaultdict(list)

    def mark(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def wrap(self, owner: Any, attribute: str, stage: str) -> None:
        original: Callable[..., Any] = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = self.mark()
            result = original(*args, **kwargs)
            self.spans[stage].append((start, self.mark()))
            return result

        setattr(owner, attribute, timed)

    def take(self) -> dict[str, list[float]]:
        """Milliseconds of each call since the last take, by stage."""
        if self.cuda:
            torch.cuda.synchronize()
        spans, self.spans = self.spans, defaultdict(list)
        if self.cuda:
            return {k: [a.elapsed_time(b) for a, b in v] for k, v in spans.items()}
        return {k: [(b - a) * 1000 for a, b in v] for k, v in spans.items()}


def measure(generator: ZImageGenerator, timer: StageTimer, size: int, images: int) -> dict:
    generator.generate(requests(1, size, 99, carousel=True))  # compiles what changed
    timer.take()
    rows = []
    for seed in range(images):
        started = time.perf_counter()
        generator.generate(requests(1, size, seed, carousel=True))
        wall = (time.perf_counter() - started) * 1000
        spans = timer.take()
        row = {"wall_ms": wall, **{s: sum(spans.get(s, [])) for s in STAGES}}
        row["steps"] = len(spans.get("transformer", []))
        row["other_ms"] = wall - sum(row[s] for s in STAGES)
        rows.append(row)
    summary = {k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]}
    summary["per_step_ms"] = round(summary["transformer"] / max(1, summary["steps"]), 2)
    return summary


def diffusers_encoding(warm: WarmPipeline) -> Callable[[list[str]], dict[str, torch.Tensor]]:
    """``warm.encode`` as diffusers' pipeline encodes: each caption padded to 512 tokens."""

    def encode(captions: list[str]) -> dict[str, torch.Tensor]:
        distinct = list(dict.fromkeys(captions))
        states, _ = warm.pipeline.encode_prompt(  # a copy: it rewrites the list in place
            list(distinct), warm.device, do_classifier_free_guidance=False
        )
        return dict(zip(distinct, states, strict=True))

    return encode


def restream(warm: WarmPipeline, *, host_table: bool, level: str = "leaf_level") -> None:
    """Stream the text encoder again, its token table in host memory (as workers do) or as an
    ``nn.Embedding`` inside the streamed groups (as before)."""
    encoder = warm.pipeline.text_encoder
    remove_offloading(warm.pipeline, ("text_encoder",))
    table = encoder.get_input_embeddings()
    if host_table and not isinstance(table, HostEmbedding):
        encoder.set_input_embeddings(HostEmbedding(table))
    elif not host_table and isinstance(table, HostEmbedding):
        embedding = torch.nn.Embedding.from_pretrained(table.table, padding_idx=table.padding_idx)
        encoder.set_input_embeddings(embedding.requires_grad_(False))
    stream(encoder, warm.device, level)


def phases(generator: ZImageGenerator, timer: StageTimer) -> list[tuple[str, Callable[[], None]]]:
    """Each phase's change, applied in order on one warm generator; full mode compares the
    encodings and a compiled encoder, balanced also where the token table lives and how the
    encoder is streamed."""
    warm = generator.warm
    ours, streamed = warm.encode, warm.plan.mode is not MemoryMode.FULL

    def use(encode: Callable[[list[str]], dict[str, torch.Tensor]], host_table: bool) -> None:
        # The captions' encoding (tokens, look-up, encoder), not the encoder's forward alone: a
        # compiled encoder would trace the timer.
        warm.encode = encode  # type: ignore[method-assign]
        timer.wrap(warm, "encode", "encode_prompt")
        if streamed:
            restream(warm, host_table=host_table)

    before = "diffusers' encoding, 512 tokens" + ("; table streamed" if streamed else "")
    steps = [
        (before, lambda: use(diffusers_encoding(warm), host_table=False)),
        ("production (blocks and VAE decoder compiled)", lambda: use(ours, host_table=True)),
    ]
    if streamed:  # fewer, larger copies (a decoder layer each) than one per linear layer
        steps.append(
            (
                "+ encoder streamed block by block",
                lambda: restream(warm, host_table=True, level="block_level"),
            )
        )
    else:  # a streamed encoder is paced by its copies, so only here
        steps.append(("+ text encoder compiled", lambda: warm.pipeline.text_encoder.compile()))
    return steps


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--mode", choices=["full", "balanced"], default="full")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.dry_run else "cuda")
    size = 256 if args.dry_run else 1024
    preset: Preset = "tiny" if args.dry_run else "full"
    dtype = torch.float32 if args.dry_run else torch.bfloat16
    pipeline: Any = build_random_pipeline(preset, dtype=dtype, device=device)
    mode = MemoryMode(args.mode)
    if mode is not MemoryMode.FULL and device.type == "cuda":
        pipeline.to("cpu")  # built on the GPU (fast), placed from the host under the cap
        torch.cuda.empty_cache()
    settings = get_settings(data_dir=Path(tempfile.mkdtemp(prefix="ryla-stages-")))
    sizes = [(size, size), (size + 64, size)]
    cap = 16.0 if mode is MemoryMode.BALANCED else None
    plan = plan_for(mode, compiled=True, real_rope=True, sizes=sizes, batch=1)
    generator = generator_for(settings, pipeline, plan)
    timer = StageTimer(device)
    report: dict[str, Any] = {
        "device": device_name(device) or "cpu",
        "torch": torch.__version__,
        "size": f"{size}x{size}",
        "memory_mode": str(mode),
        "cap_gib": cap,
        "phases": [],
    }
    with memory_cap(device, cap):
        generator.load()
        timer.wrap(pipeline.transformer, "forward", "transformer")
        timer.wrap(pipeline.vae, "decode", "vae_decode")
        for name, change in phases(generator, timer):
            try:
                change()
                result = {"phase": name, **measure(generator, timer, size, args.images)}
            except Exception as exc:  # a phase that fails is reported, the others still run
                result = {"phase": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
            log.info("%s", result)
            report["phases"].append(result)
    print_table(report)
    slug = "dryrun_cpu" if args.dry_run else report["device"].lower().replace(" ", "-")
    suffix = "" if mode is MemoryMode.FULL else f"_{mode}"
    path = args.out_dir / f"zimage_stages_{slug}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nOne image, {report['size']}, {report['memory_mode']} mode, medians in ms, "
        f"{report['device']}"
    )
    heads = ("wall", "encoder", "transf.", "/step", "VAE", "rest")
    print(f"{'phase':<48} " + " ".join(f"{h:>7}" for h in heads))
    for p in report["phases"]:
        if "error" in p:
            print(f"{p['phase']:<48} {p['error']}")
            continue
        print(
            f"{p['phase']:<48} {p['wall_ms']:>7.1f} {p['encode_prompt']:>7.1f} "
            f"{p['transformer']:>7.1f} {p['per_step_ms']:>7.1f} {p['vae_decode']:>7.1f} "
            f"{p['other_ms']:>7.1f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
