"""Captions into what Z-Image's transformer reads: the text encoder's second-to-last hidden
states, one row per caption token.

diffusers encodes inside every pipeline call: the same caption again for each image of a carousel
and for each call a carousel is split into, every caption padded to 512 tokens. Here every
distinct caption of a generator call is encoded once, before its pipeline calls, at its own
length. In ``balanced`` and ``low`` modes, where each encoder pass streams ~7 GB of weights over
PCIe, a carousel of n images split into n calls streams them once instead of n times.

The states are the ones diffusers computes (to float32 rounding; in bf16 other matrix shapes round
differently): the encoder's attention is causal, so a caption's tokens never see the padding
placed after them, however much of it there is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from diffusers.models.transformers.transformer_z_image import SEQ_MULTI_OF

__all__ = [
    "ENCODE_ROWS",
    "ENCODE_TOKENS",
    "MAX_CAPTION_TOKENS",
    "caption_length",
    "caption_tokens",
    "encode_captions",
    "padded_length",
]

# diffusers' default max_sequence_length: longer captions are cut there.
MAX_CAPTION_TOKENS = 512
# One encoder pass holds at most this many rows, and rows x its longest caption at most
# ENCODE_TOKENS: the hidden states of every layer are kept (~190 KB a token for Qwen3-4B in
# bf16), so a pass stays under ~0.4 GB, far below a denoising step's activations.
ENCODE_ROWS = 16
ENCODE_TOKENS = 2048


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


def _passes(ids: list[list[int]]) -> Iterator[list[int]]:
    """Indices into ``ids`` for each encoder pass, in order, within both limits."""
    current: list[int] = []
    longest = 0
    for index, tokens in enumerate(ids):
        wider = max(longest, len(tokens))
        if current and (len(current) == ENCODE_ROWS or (len(current) + 1) * wider > ENCODE_TOKENS):
            yield current
            current, wider = [], len(tokens)
        current.append(index)
        longest = wider
    if current:
        yield current


@torch.no_grad()
def _encode_pass(encoder: Any, ids: list[list[int]], device: torch.device) -> list[torch.Tensor]:
    # Padded on the right, and no mask needed: attention is causal, so a real token only sees
    # the tokens before it, never the padding after, and its position stays its index. (Padding
    # on the left would move every real token; the float32 test against diffusers catches that.)
    padded = torch.zeros(len(ids), max(len(tokens) for tokens in ids), dtype=torch.long)
    for row, tokens in enumerate(ids):
        padded[row, : len(tokens)] = torch.tensor(tokens)
    states = encoder(input_ids=padded.to(device), output_hidden_states=True).hidden_states[-2]
    return [states[row, : len(tokens)] for row, tokens in enumerate(ids)]


def encode_captions(
    pipeline: Any, captions: Iterable[str], device: torch.device
) -> dict[str, torch.Tensor]:
    """Each distinct caption's hidden states on ``device``, keyed by the caption."""
    distinct = list(dict.fromkeys(captions))
    ids = [caption_tokens(pipeline.tokenizer, caption) for caption in distinct]
    encoded: dict[str, torch.Tensor] = {}
    for rows in _passes(ids):
        states = _encode_pass(pipeline.text_encoder, [ids[row] for row in rows], device)
        encoded.update(zip([distinct[row] for row in rows], states, strict=True))
    return encoded
