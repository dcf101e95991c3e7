"""Per-character LoRA adapters on a warm Z-Image pipeline: load, scale, swap; the base stays put.

Only ``.safetensors`` is read (a pickle can run code); an unusable LoRA is skipped, saying why.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

__all__ = ["LoraAdapters"]

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


class LoraAdapters:
    """The LoRA adapters loaded into one pipeline's transformer, most recently used last."""

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
        if path is None:
            self._deactivate()
            return None
        record: dict[str, Any] = {"path": path, "scale": scale, "used": False}
        problem = _refusal(Path(path))
        if problem is None:
            try:
                entry = self._ensure_loaded(Path(path))
            except Exception as exc:  # any failure to read or fit the file: generate without it
                problem = f"failed to load: {_one_line(exc)}"
        if problem is not None:
            log.warning("zimage: LoRA %s not used (%s)", path, problem)
            self._deactivate()
            return record | {"reason": problem}
        self._pipeline.enable_lora()
        self._pipeline.set_adapters([entry.adapter], adapter_weights=[scale])
        return record | {"used": True, "adapter": entry.adapter, "sha256": entry.sha256}

    def _deactivate(self) -> None:
        if self._loaded:
            self._pipeline.disable_lora()

    def _ensure_loaded(self, path: Path) -> _Loaded:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
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
