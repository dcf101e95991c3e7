"""The preview generator is deterministic and labelled; settings default to the embedded mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.generators import GenerationRequest, PreviewGenerator, select_generator
from pipeline.generators.preview import PREVIEW_LABEL
from pipeline.settings import Settings, load_secret_key


def req(seed: int = 1, prompt: str = "a woman on a beach") -> GenerationRequest:
    return GenerationRequest(
        post_id=1, prompt=prompt, negative_prompt="", width=896, height=1120, seed=seed
    )


def test_same_request_gives_the_same_pixels() -> None:
    (a,), (b,) = PreviewGenerator().generate([req()]), PreviewGenerator().generate([req()])
    assert a.image.tobytes() == b.image.tobytes()


def test_another_seed_gives_another_image() -> None:
    (a,), (b,) = PreviewGenerator().generate([req(1)]), PreviewGenerator().generate([req(2)])
    assert a.image.tobytes() != b.image.tobytes()


def test_a_preview_says_so_in_its_metadata_and_its_pixels() -> None:
    (image,) = PreviewGenerator().generate([req()])
    assert image.meta["preview"] is True and image.meta["label"] == PREVIEW_LABEL
    assert image.image.size == (896, 1120)
    banner = image.image.crop((0, 0, 896, 896 // 9)).getcolors(1 << 16)
    assert banner is not None and any(c == (255, 220, 0) for _, c in banner)  # the yellow title


def test_sizes_must_be_multiples_of_16() -> None:
    with pytest.raises(ValueError, match="width=1000: must be a multiple of 16"):
        GenerationRequest(post_id=1, prompt="", negative_prompt="", width=1000, height=1024, seed=0)


def test_defaults_are_the_embedded_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RYLA_DATABASE_URL", "RYLA_BROKER_URL", "RYLA_GENERATOR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'ryla.db'}"
    assert settings.broker_url.startswith("filesystem://")
    assert settings.generator == "auto"


def test_auto_picks_the_preview_without_gpu_extra_or_weights(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, generator="auto")  # type: ignore[arg-type]
    assert select_generator(settings).name == "preview"


@pytest.mark.parametrize("weak", ["changeme", "short-but-random"])
def test_a_weak_secret_key_is_refused(tmp_path: Path, weak: str) -> None:
    with pytest.raises(ValidationError, match="RYLA_SECRET_KEY is too weak"):
        Settings(data_dir=tmp_path, secret_key=weak)


def test_the_embedded_secret_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="")
    key = load_secret_key(settings)
    assert load_secret_key(settings) == key and len(key) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
