"""A randomly initialised ``ZImagePipeline`` built from configs alone, with no hub access.

``tiny`` runs the real generator code on a CPU in tests; ``full`` has the real sizes, to benchmark.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from transformers import Qwen2Tokenizer, Qwen3Config, Qwen3Model

__all__ = ["PRESETS", "Preset", "build_random_pipeline", "byte_level_tokenizer"]

Preset = Literal["tiny", "full"]

_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# The Qwen chat layout the pipeline asks for (apply_chat_template with a generation prompt).
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class _Configs:
    transformer: dict[str, Any]
    text_encoder: dict[str, Any]
    vae: dict[str, Any]
    scheduler: dict[str, Any]


_FLUX_VAE_SCALING = {"scaling_factor": 0.3611, "shift_factor": 0.1159}

# The published Z-Image-Turbo shapes: 6.15 B transformer, Qwen3-4B encoder, Flux VAE.
_FULL = _Configs(
    transformer={
        "in_channels": 16,
        "dim": 3840,
        "n_layers": 30,
        "n_refiner_layers": 2,
        "n_heads": 30,
        "n_kv_heads": 30,
        "cap_feat_dim": 2560,
        "axes_dims": [32, 48, 48],
        "axes_lens": [1536, 512, 512],
    },
    text_encoder={
        "hidden_size": 2560,
        "intermediate_size": 9728,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
        "max_position_embeddings": 40960,
        "tie_word_embeddings": True,
    },
    vae={
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
        "sample_size": 1024,
    },
    scheduler={"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": False},
)

# Small enough that 8 steps at 64x64 take a fraction of a second on a CPU.
_TINY = _Configs(
    transformer={
        "in_channels": 16,
        "dim": 32,
        "n_layers": 2,
        "n_refiner_layers": 1,
        "n_heads": 2,
        "n_kv_heads": 2,
        "cap_feat_dim": 16,
        "axes_dims": [8, 4, 4],
        "axes_lens": [256, 128, 128],  # up to 2048 px: room for every native size
    },
    text_encoder={
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "vocab_size": 259,
        "max_position_embeddings": 512,
    },
    vae={
        # Four blocks like Flux's: pixels map to latents 8:1 and to tokens 16:1, as in the model.
        "block_out_channels": [8, 16, 16, 16],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "sample_size": 256,
    },
    scheduler=_FULL.scheduler,
)

PRESETS: dict[str, _Configs] = {"tiny": _TINY, "full": _FULL}


def _byte_symbols() -> list[str]:
    """The GPT-2 byte-to-unicode table: printable bytes stand for themselves, the rest shift up."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols, shifted = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols


def _write_tokenizer_files(folder: Path) -> None:
    vocab = {symbol: index for index, symbol in enumerate(_byte_symbols())}
    for token in _SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    added = {
        str(vocab[token]): {"content": token, "special": True, "normalized": False}
        for token in _SPECIAL_TOKENS
    }
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "chat_template": _CHAT_TEMPLATE,
        "model_max_length": 512,
        "added_tokens_decoder": added,
    }
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: one token per byte
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def byte_level_tokenizer() -> Qwen2Tokenizer:
    """A 259-entry Qwen2 tokenizer: the 256 bytes and 3 specials, since the hub is out of reach."""
    with tempfile.TemporaryDirectory(prefix="ryla-tokenizer-") as folder:
        _write_tokenizer_files(Path(folder))
        return Qwen2Tokenizer.from_pretrained(folder, local_files_only=True)


@contextmanager
def _building_on(dtype: torch.dtype, device: torch.device) -> Iterator[None]:
    # Creating parameters in place, in the target dtype, keeps the full preset at ~20 GB, not 40.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            yield
    finally:
        torch.set_default_dtype(previous)


def _transformer(config: dict[str, Any]) -> ZImageTransformer2DModel:
    model: Any = ZImageTransformer2DModel(**config)  # diffusers' stubs miss nn.Module members
    # The pad tokens are allocated with torch.empty: left as is they can hold NaN or huge values.
    with torch.no_grad():
        model.x_pad_token.fill_(1.0)
        model.cap_pad_token.fill_(1.0)
    return model


def _text_encoder(config: dict[str, Any]) -> Qwen3Model:
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0}
    return Qwen3Model(Qwen3Config(**config, rope_parameters=rope))


def build_random_pipeline(
    preset: Preset = "tiny",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> ZImagePipeline:
    """A ZImagePipeline of the preset's shapes with seeded random weights, offline."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    configs, target = PRESETS[preset], torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with _building_on(dtype, target):
            transformer: Any = _transformer(configs.transformer)
            text_encoder = _text_encoder(configs.text_encoder)
            vae = AutoencoderKL(latent_channels=16, **configs.vae, **_FLUX_VAE_SCALING)
    pipeline: Any = ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**configs.scheduler),
        vae=vae,
        text_encoder=text_encoder.eval(),
        tokenizer=byte_level_tokenizer(),
        transformer=transformer.eval(),
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
