"""Per-character LoRAs on a warm Z-Image pipeline, two ways: fused into resident weights (no cost
per step, compiled graphs stay valid) or as swappable adapters (when the weights are streamed).

Only ``.safetensors`` is read (a pickle can run code); an unusable LoRA is skipped, saying why.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file

__all__ = ["FusedLora", "LoraAdapters"]

log = logging.getLogger(__name__)

# Adapters kept loaded at once; the least recently used one is dropped first.
DEFAULT_CAPACITY = 4


@dataclass(frozen=True)
class _Loaded:
    adapter: str
    sha256: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _refusal(path: Path) -> str | None:
    """Why this file is not even opened, or None."""
    if path.suffix.lower() != ".safetensors":
        return (
            f"not a .safetensors file ({path.suffix or 'no suffix'}): refused, pickles can run code"
        )
    if not path.is_file():
        return "file not found"
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _file_key(path: Path) -> tuple[str, int, int]:
    """The file as it is now: an edited LoRA under the same name counts as a new one."""
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _activation(
    path: str | None, scale: float, apply: Callable[[Path], _Loaded], undo: Callable[[], None]
) -> dict[str, Any] | None:
    """Run ``apply(Path)`` for a LoRA, or ``undo()`` without one; the provenance to record."""
    if path is None:
        undo()
        return None
    record: dict[str, Any] = {"path": path, "scale": scale, "used": False}
    problem = _refusal(Path(path))
    if problem is None:
        try:
            entry = apply(Path(path))
        except Exception as exc:  # any failure to read or fit the file: generate without it
            problem = f"failed to load: {_one_line(exc)}"
    if problem is not None:
        log.warning("zimage: LoRA %s not used (%s)", path, problem)
        undo()
        return record | {"reason": problem}
    return record | {"used": True, "adapter": entry.adapter, "sha256": entry.sha256}


class LoraAdapters:
    """LoRA adapters loaded side by side into one transformer, most recently used last.

    Switching is instant, but every step pays for the adapter's extra matmuls, and loading one
    changes the module structure (a compiled graph would recompile): for streamed weights.
    """

    def __init__(self, pipeline: Any, capacity: int = DEFAULT_CAPACITY) -> None:
        # Two at least: the adapter dropped must never be the one still active.
        self._pipeline = pipeline
        self._capacity = max(2, capacity)
        self._loaded: OrderedDict[tuple[str, int, int], _Loaded] = OrderedDict()

    @property
    def loaded(self) -> list[str]:
        return [entry.adapter for entry in self._loaded.values()]

    def activate(self, path: str | None, scale: float) -> dict[str, Any] | None:
        """Make this LoRA (or none) the active one; the provenance to record on the image."""

        def apply(file: Path) -> _Loaded:
            entry = self._ensure_loaded(file)
            self._pipeline.enable_lora()
            self._pipeline.set_adapters([entry.adapter], adapter_weights=[scale])
            return entry

        return _activation(path, scale, apply, self._deactivate)

    def _deactivate(self) -> None:
        if self._loaded:
            self._pipeline.disable_lora()

    def _ensure_loaded(self, path: Path) -> _Loaded:
        key = _file_key(path)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        entry = self._load(path)
        self._loaded[key] = entry
        self._evict()
        return entry

    def _load(self, path: Path) -> _Loaded:
        sha = _sha256(path)
        adapter = f"lora_{sha[:16]}"
        for entry in self._loaded.values():
            if entry.adapter == adapter:  # same bytes under another name or mtime
                return entry
        state = load_file(path, device="cpu")  # safetensors only: no pickle is ever opened
        try:
            with warnings.catch_warnings():
                # peft warns whenever a second adapter joins a model: holding several is the point.
                warnings.filterwarnings("ignore", "Already found a `peft_config`", UserWarning)
                self._pipeline.load_lora_weights(state, adapter_name=adapter)
            if adapter not in getattr(self._pipeline.transformer, "peft_config", {}):
                raise ValueError("no key matches a layer of the Z-Image transformer")
        except Exception:
            self._forget(adapter)
            raise
        log.info("zimage: LoRA %s loaded as %s", path, adapter)
        return _Loaded(adapter=adapter, sha256=sha)

    def _evict(self) -> None:
        while len(self._loaded) > self._capacity:
            _, entry = self._loaded.popitem(last=False)
            if entry.adapter not in self.loaded:
                self._forget(entry.adapter)

    def _forget(self, adapter: str) -> None:
        transformer = self._pipeline.transformer
        if adapter in getattr(transformer, "peft_config", {}):
            self._pipeline.delete_adapters([adapter])


class FusedLora:
    """One LoRA at a time merged into the resident transformer's weights.

    The merged weights cost nothing per step and keep every module as it was, so compiled graphs
    stay valid. The weights a LoRA overwrote are kept in host memory, copied the first time a
    LoRA touches them, and copied back exactly before the next LoRA: no drift, however many swaps.
    """

    _ADAPTER = "ryla_fused"

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self._originals: dict[str, torch.Tensor] = {}  # layer name -> its base weight, on the host
        self._fused_layers: list[str] = []
        self._active: tuple[tuple[str, int, int], float, _Loaded] | None = None
        self._digests: dict[tuple[str, int, int], str] = {}

    @property
    def loaded(self) -> list[str]:
        return [self._active[2].adapter] if self._active else []

    def activate(self, path: str | None, scale: float) -> dict[str, Any] | None:
        """Make this LoRA (or none) the fused one; the provenance to record on the image."""
        return _activation(path, scale, lambda file: self._ensure_fused(file, scale), self._restore)

    def _ensure_fused(self, path: Path, scale: float) -> _Loaded:
        key = _file_key(path)
        if self._active is not None and self._active[:2] == (key, scale):
            return self._active[2]
        self._restore()
        if key not in self._digests:
            self._digests[key] = _sha256(path)
        entry = _Loaded(adapter=f"lora_{self._digests[key][:16]}", sha256=self._digests[key])
        self._fuse(load_file(path, device="cpu"), scale)  # safetensors only: no pickle is opened
        self._active = (key, scale, entry)
        log.info("zimage: LoRA %s fused at scale %g", path, scale)
        return entry

    def _fuse(self, state: dict[str, torch.Tensor], scale: float) -> None:
        transformer = self._pipeline.transformer
        try:
            self._pipeline.load_lora_weights(state, adapter_name=self._ADAPTER)
            wrapped: dict[str, Any] = {
                name: module.get_base_layer()
                for name, module in transformer.named_modules()
                if isinstance(module, BaseTunerLayer)
            }
            if not wrapped:
                raise ValueError("no key matches a layer of the Z-Image transformer")
            for name, layer in wrapped.items():
                if name not in self._originals:
                    self._originals[name] = _host_copy(layer.weight)
            self._fused_layers = list(wrapped)
            transformer.fuse_lora(lora_scale=scale, adapter_names=[self._ADAPTER])
        finally:
            if getattr(transformer, "peft_config", None):
                transformer.unload_lora()  # the LoRA layers go; the merged base weights stay

    def _restore(self) -> None:
        transformer = self._pipeline.transformer
        with torch.no_grad():
            for name in self._fused_layers:
                transformer.get_submodule(name).weight.copy_(self._originals[name])
        self._fused_layers = []
        self._active = None


def _host_copy(weight: torch.Tensor) -> torch.Tensor:
    """The weight on the host; pinned when it lives on a GPU, so restoring it copies fast."""
    if weight.device.type != "cuda":
        return weight.detach().clone()
    return torch.empty(weight.shape, dtype=weight.dtype, pin_memory=True).copy_(weight.detach())
