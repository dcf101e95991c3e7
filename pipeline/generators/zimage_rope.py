"""Z-Image's rotary position embedding in real numbers: cosine and sine pairs, no complex tensors.

Same result as diffusers' complex version (float32 to 1e-6, bf16 images pixel-equal on the tiny
pipeline), but inductor fuses it into the compiled block instead of calling out to eager kernels.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_z_image import ZSingleStreamAttnProcessor

__all__ = ["RealRopeAttention", "RealRopeTable", "rotate", "use_real_rope"]


class RealRopeTable:
    """Stands in for ``transformer.rope_embedder``: position ids in, (…, dim/2, 2) cos/sin out.

    Built like diffusers' table (float64 angles, then float32) so both agree to the last bit of
    the angles; cached per device.
    """

    def __init__(self, theta: float, axes_dims: list[int], axes_lens: list[int]) -> None:
        self.theta = theta
        self.axes_dims = list(axes_dims)
        self.axes_lens = list(axes_lens)
        self._tables: list[torch.Tensor] = []

    @classmethod
    def replacing(cls, embedder: Any) -> RealRopeTable:
        return cls(embedder.theta, embedder.axes_dims, embedder.axes_lens)

    def _build(self, device: torch.device) -> list[torch.Tensor]:
        tables = []
        for dim, length in zip(self.axes_dims, self.axes_lens, strict=True):
            exponents = torch.arange(0, dim, 2, dtype=torch.float64) / dim
            positions = torch.arange(length, dtype=torch.float64)
            angles = torch.outer(positions, 1.0 / self.theta**exponents).float()
            tables.append(torch.stack([angles.cos(), angles.sin()], dim=-1).to(device))
        return tables

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        if not self._tables or self._tables[0].device != ids.device:
            self._tables = self._build(ids.device)
        return torch.cat([table[ids[:, axis]] for axis, table in enumerate(self._tables)], dim=-2)


def rotate(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate (batch, seq, heads, dim) by (batch, seq, dim/2, 2) cos/sin, in float32 as upstream."""
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    cos, sin = freqs[..., 0].unsqueeze(2), freqs[..., 1].unsqueeze(2)
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


class RealRopeAttention:
    """Z-Image's attention processor with ``rotate`` in place of the complex multiply.

    Mirrors diffusers' ``ZSingleStreamAttnProcessor`` call for call (LoRA layers and the
    attention backend dispatch work unchanged); only the rotary step differs.
    """

    _attention_backend: Any = None
    _parallel_config: Any = None

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        freqs_cis: torch.Tensor | None = None,
    ) -> torch.Tensor:
        query = attn.to_q(hidden_states).unflatten(-1, (attn.heads, -1))
        key = attn.to_k(hidden_states).unflatten(-1, (attn.heads, -1))
        value = attn.to_v(hidden_states).unflatten(-1, (attn.heads, -1))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if freqs_cis is not None:
            query, key = rotate(query, freqs_cis), rotate(key, freqs_cis)
        if attention_mask is not None and attention_mask.ndim == 2:
            attention_mask = attention_mask[:, None, None, :]  # (batch, seq) → broadcast per head
        hidden = dispatch_attention_fn(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=0.0,
            is_causal=False,
            backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )
        output = attn.to_out[0](hidden.flatten(2, 3).to(query.dtype))
        return output if len(attn.to_out) == 1 else attn.to_out[1](output)


def use_real_rope(transformer: Any) -> int:
    """Swap the transformer's RoPE table and attention processors; returns how many processors
    were swapped (none on a second call).

    Call before setting an attention backend: the backend is set on the processors in place.
    """
    if not isinstance(transformer.rope_embedder, RealRopeTable):
        transformer.rope_embedder = RealRopeTable.replacing(transformer.rope_embedder)
    swapped = 0
    for module in transformer.modules():
        if isinstance(getattr(module, "processor", None), ZSingleStreamAttnProcessor):
            module.set_processor(RealRopeAttention())
            swapped += 1
    return swapped
