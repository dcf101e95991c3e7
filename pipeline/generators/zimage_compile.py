"""Compiling Z-Image: the transformer's blocks (regional compile beneath any offloading hooks)
and the VAE decoder, the compile cache that survives restarts, and the counters that show what
compiled when.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch._dynamo.utils import counters

from pipeline.settings import Settings

__all__ = [
    "RECOMPILE_LIMIT",
    "CompileCounters",
    "compile_blocks",
    "compile_cache_folder",
    "compile_decoder",
    "use_compile_cache",
]

# Graphs one block's code may hold. A warm worker holds about 9 (with and without the time
# embedding, one image or several, with and without a padding mask, static then dynamic lengths);
# torch's default of 8 would make the ninth variant raise under fullgraph=True.
RECOMPILE_LIMIT = 64
_INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
_COMPILED_MARK = "_ryla_compiled"


def compile_cache_folder(settings: Settings) -> tuple[Path, str]:
    """Where compiled kernels persist, and which setting said so."""
    if settings.zimage_compile_cache_dir is not None:
        return settings.zimage_compile_cache_dir.expanduser(), "RYLA_ZIMAGE_COMPILE_CACHE_DIR"
    if os.environ.get(_INDUCTOR_CACHE_ENV):
        return Path(os.environ[_INDUCTOR_CACHE_ENV]), _INDUCTOR_CACHE_ENV
    return settings.data_dir / "compile-cache", "RYLA_DATA_DIR"


def use_compile_cache(folder: Path) -> None:
    """Point inductor's caches (graphs, autotuning, Triton kernels) at ``folder``.

    Must run before this process compiles anything: inductor fixes its folder on first use.
    """
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[_INDUCTOR_CACHE_ENV] = str(folder)


def compile_blocks(transformer: Any, *, backend: str | Callable[..., Any] = "inductor") -> int:
    """Compile each repeated transformer block's forward; returns how many blocks.

    The blocks share one code object, so one set of graphs serves all 34. Compiling ``forward``
    (not the module's call) keeps diffusers' offloading hooks outside the graph, and nothing
    compiles until the first call. Parameters must not require grad: a LoRA fused later flips
    ``requires_grad`` and that alone would recompile every graph.
    """
    dynamo_config: Any = torch._dynamo.config
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
    dynamo_config.accumulated_recompile_limit = max(
        dynamo_config.accumulated_recompile_limit, RECOMPILE_LIMIT * 4
    )
    repeated = set(transformer._repeated_blocks)
    blocks = [module for module in transformer.modules() if type(module).__name__ in repeated]
    for block in blocks:
        if not hasattr(block, _COMPILED_MARK):  # a second call must not wrap the wrapper
            block.forward = torch.compile(block.forward, fullgraph=True, backend=backend)
            setattr(block, _COMPILED_MARK, True)
    return len(blocks)


def compile_decoder(vae: Any, *, backend: str | Callable[..., Any] = "inductor") -> None:
    """Compile the VAE decoder's forward, once.

    On an H200 at 1024² it decodes in 37 ms instead of 90 ms, with a lower peak
    (``benchmarks/results/zimage_stages_nvidia-h200.json``). Not full-graph: diffusers' upsampler
    consults a cached version check, which dynamo traces through.
    """
    decoder = vae.decoder
    if not hasattr(decoder, _COMPILED_MARK):
        decoder.forward = torch.compile(decoder.forward, backend=backend)
        setattr(decoder, _COMPILED_MARK, True)


@dataclass(frozen=True)
class CompileCounters:
    """Process-wide compile counters at one moment; subtract two to see what happened between."""

    graphs: int
    cache_hits: int
    cache_misses: int

    @classmethod
    def now(cls) -> CompileCounters:
        return cls(
            graphs=int(counters["stats"]["unique_graphs"]),
            cache_hits=int(counters["inductor"]["fxgraph_cache_hit"]),
            cache_misses=int(counters["inductor"]["fxgraph_cache_miss"]),
        )

    def since(self, earlier: CompileCounters) -> CompileCounters:
        return CompileCounters(
            graphs=self.graphs - earlier.graphs,
            cache_hits=self.cache_hits - earlier.cache_hits,
            cache_misses=self.cache_misses - earlier.cache_misses,
        )
