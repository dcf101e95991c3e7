"""Helpers for the Z-Image tests: requests, pixel comparisons, a call recorder, LoRA files, plans.

Shared by the unit tests of the generator, its memory modes and its compiled warm-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import ZImagePipeline
from PIL import Image

from pipeline.generators.base import GenerationRequest
from pipeline.generators.zimage_memory import MemoryChoice, MemoryMode
from pipeline.generators.zimage_plan import RuntimePlan, WarmupCall
from pipeline.generators.zimage_random import build_random_pipeline

SIZE = 256  # the smallest size a request may ask for; 256 tokens on the tiny transformer
PROMPT = "ryla_anna, a woman with auburn hair reading in a sunlit cafe, film photo"


def request(seed: int = 0, prompt: str = PROMPT, **changes: Any) -> GenerationRequest:
    fields: dict[str, Any] = {"width": SIZE, "height": SIZE, "lora_path": None}
    fields |= changes
    return GenerationRequest(post_id=seed, prompt=prompt, negative_prompt="", seed=seed, **fields)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def max_difference(first: Image.Image, second: Image.Image) -> int:
    return int(np.abs(pixels(first) - pixels(second)).max())


class Recorder:
    """The real pipeline, with every call's keyword arguments kept for inspection."""

    def __init__(self, pipeline: Any) -> None:
        self.wrapped = pipeline
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.wrapped(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def cpu_plan(
    mode: MemoryMode = MemoryMode.CPU,
    *,
    max_batch: int = 2,
    compile: bool = False,
    warmup: tuple[WarmupCall, ...] = (),
    real_rope: bool | None = None,
) -> RuntimePlan:
    """A plan for the tiny pipeline on the CPU: any memory mode's hooks, and compiling through
    dynamo with the ``eager`` backend (the same graphs and guards, no code generation)."""
    return RuntimePlan(
        memory=MemoryChoice(mode, max_batch, "chosen by the test"),
        compile=compile,
        compile_reason="chosen by the test",
        warmup=warmup,
        compile_backend="eager",
        real_rope=compile if real_rope is None else real_rope,
    )


def write_lora_files(folder: Path) -> dict[str, Path]:
    """Three character LoRAs for the tiny transformer, written by diffusers' own LoRA writer."""
    # Layer names come from a fresh model: once an adapter is in, peft wraps and renames them.
    layers = {
        name: module
        for name, module in build_random_pipeline("tiny").transformer.named_modules()
        if isinstance(module, torch.nn.Linear) and ".attention." in name
    }
    files = {}
    for label, seed in (("anna", 1), ("ben", 2), ("cleo", 3)):
        noise = torch.Generator().manual_seed(seed)
        state = {}
        for name, layer in layers.items():
            state[f"{name}.lora_A.weight"] = torch.randn(4, layer.in_features, generator=noise)
            state[f"{name}.lora_B.weight"] = torch.randn(layer.out_features, 4, generator=noise)
        ZImagePipeline.save_lora_weights(
            folder, transformer_lora_layers=state, weight_name=f"{label}.safetensors"
        )
        files[label] = folder / f"{label}.safetensors"
    return files
