"""Z-Image-Turbo's weights on disk: find them (a folder or the Hugging Face cache), check they are
complete, download them; and whether this process can run Z-Image at all.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from pipeline.errors import GenerationError, WeightsMissing
from pipeline.generators.zimage_device import cuda_device_count
from pipeline.settings import Settings

__all__ = ["availability", "download_weights", "resolve_weights"]

log = logging.getLogger(__name__)

_PARTS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")
_WEIGHTED_PARTS = ("text_encoder", "transformer", "vae")
_DOWNLOAD_PATTERNS = ["model_index.json", *(f"{part}/*" for part in _PARTS)]
_HOW_TO_GET = (
    "run `ryla model download` on a machine with internet (then copy the Hugging Face cache "
    "or the folder here), or set RYLA_ZIMAGE_PATH to a folder holding the weights"
)


def _missing_shards(part: Path) -> list[str]:
    missing = []
    for index in part.glob("*.safetensors.index.json"):
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        missing += [name for name in sorted(shards) if not (part / name).exists()]
    return missing


def _incomplete(folder: Path) -> str | None:
    """What is missing from a weights folder, or None when it looks complete."""
    if not (folder / "model_index.json").is_file():
        return "no model_index.json"
    for part in _PARTS:
        if not (folder / part).is_dir():
            return f"no {part}/ folder"
    for part in _WEIGHTED_PARTS:
        if not any((folder / part).glob("*.safetensors")):
            return f"no {part}/*.safetensors"
        if missing := _missing_shards(folder / part):
            return f"{part}/ lacks {len(missing)} shard(s), e.g. {missing[0]}"
    return None


def _cached_snapshot(settings: Settings) -> Path:
    repo = f"{settings.zimage_model_id}@{settings.zimage_revision or 'main'}"
    try:
        folder = snapshot_download(
            settings.zimage_model_id,
            revision=settings.zimage_revision,
            allow_patterns=_DOWNLOAD_PATTERNS,
            local_files_only=True,  # never reaches the network: the cache either has it or not
        )
    except (OSError, ValueError) as exc:
        raise WeightsMissing(
            f"Z-Image weights {repo} are not in the Hugging Face cache: {_HOW_TO_GET}"
        ) from exc
    return Path(folder)


def resolve_weights(settings: Settings) -> tuple[Path, str | None]:
    """The local weights folder and its revision, or WeightsMissing saying how to get them."""
    if settings.zimage_path is not None:
        folder, revision = settings.zimage_path.expanduser(), settings.zimage_revision
        where = f"RYLA_ZIMAGE_PATH={folder}"
    else:
        folder = _cached_snapshot(settings)
        revision = folder.name  # the snapshot folder is named after the commit: exact provenance
        where = f"{settings.zimage_model_id} in the Hugging Face cache ({folder})"
    if problem := _incomplete(folder):
        raise WeightsMissing(
            f"Z-Image weights at {where} are incomplete ({problem}): {_HOW_TO_GET}"
        )
    return folder, revision


def availability(settings: Settings) -> tuple[bool, str]:
    """Whether this process can run Z-Image (a CUDA GPU and local weights), and why not.

    Fork-safe: asks NVML for the GPU count and reads the disk, so no CUDA context is created.
    """
    count = cuda_device_count()
    if not count:
        return False, "no CUDA device is visible"
    try:
        folder, _ = resolve_weights(settings)
    except WeightsMissing as exc:
        return False, str(exc)
    return True, f"{count} CUDA device(s), weights in {folder}"


def download_weights(settings: Settings) -> Path:
    """Fetch the settings' repo id and revision into RYLA_ZIMAGE_PATH, or else the HF cache."""
    local_dir = settings.zimage_path.expanduser() if settings.zimage_path else None
    repo = f"{settings.zimage_model_id}@{settings.zimage_revision or 'main'}"
    try:
        folder = Path(
            snapshot_download(
                settings.zimage_model_id,
                revision=settings.zimage_revision,
                allow_patterns=_DOWNLOAD_PATTERNS,
                local_dir=local_dir,
            )
        )
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise GenerationError(
            f"could not download {repo}: {exc}; check the network, the repo id and HF_TOKEN"
        ) from exc
    if problem := _incomplete(folder):
        raise GenerationError(f"downloaded {repo} to {folder} but it is incomplete ({problem})")
    log.info("zimage: weights %s in %s", repo, folder)
    return folder
