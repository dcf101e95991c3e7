"""Captions into what Z-Image's transformer reads: the text encoder's second-to-last hidden
states, one row per caption token.

diffusers encodes inside every pipeline call: the same caption again for each image of a carousel
and for each call a carousel is split into, every caption padded to 512 tokens. Here every
distinct caption of a generator call is encoded once, before its pipeline calls, at its own
length. In ``balanced`` and ``low`` modes, where each encoder pass streams ~7 GB of weights over
PCIe, a carousel of n images split into n calls streams them once instead of n times.

The states are the ones diffusers computes: padding is masked and RoPE depends only on the
distance between tokens, so the real tokens do not see how much padding there is or where.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from diffusers.models.transformers.transformer_z_image import SEQ_MULTI_OF

__all__ = [
    "ENCODE_ROWS",
    "MAX_CAPTION_TOKENS",
    "caption_length",
    "caption_tokens",
    "encode_captions",
    "padded_length",
]

# diffusers' default max_sequence_length: longer captions are cut there.
MAX_CAPTION_TOKENS = 512
# Captions per encoder pass: bounds the activations (rows x longest caption) of one pass.
ENCODE_ROWS = 16


def caption_tokens(tokenizer: Any, caption: str) -> list[int]:
    """The caption's token ids as diffusers builds them: its chat template, cut at 512 tokens."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": caption}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=True,
    )
    return list(tokenizer(text, max_length=MAX_CAPTION_TOKENS, truncation=True).input_ids)


def caption_length(pipeline: Any, caption: str) -> int:
    """The caption's length as the transformer sees it: padded up to a multiple of 32."""
    return padded_length(len(caption_tokens(pipeline.tokenizer, caption)))


def padded_length(tokens: int) -> int:
    """A caption of ``tokens`` tokens as the transformer pads it: up to a multiple of 32."""
    return -(-tokens // SEQ_MULTI_OF) * SEQ_MULTI_OF


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def _encode_rows(pipeline: Any, captions: list[str], device: torch.device) -> list[torch.Tensor]:
    encoder = pipeline.text_encoder
    ids = [caption_tokens(pipeline.tokenizer, caption) for caption in captions]
    longest = max(len(row) for row in ids)
    # Right-padded with any id: the mask hides it, and a real token's position stays its index.
    padded = torch.zeros(len(ids), longest, dtype=torch.long)
    mask = torch.zeros(len(ids), longest, dtype=torch.bool)
    for row, tokens in enumerate(ids):
        padded[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = True
    states = encoder(
        input_ids=padded.to(device), attention_mask=mask.to(device), output_hidden_states=True
    ).hidden_states[-2]
    return [states[row, : len(tokens)] for row, tokens in enumerate(ids)]


def encode_captions(
    pipeline: Any, captions: Iterable[str], device: torch.device
) -> dict[str, torch.Tensor]:
    """Each distinct caption's hidden states on ``device``, keyed by the caption."""
    distinct = list(dict.fromkeys(captions))
    encoded: dict[str, torch.Tensor] = {}
    for chunk in _chunks(distinct, ENCODE_ROWS):
        encoded.update(zip(chunk, _encode_rows(pipeline, chunk, device), strict=True))
    return encoded
