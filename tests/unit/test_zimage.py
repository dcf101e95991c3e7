"""The zimage generator, run for real on a tiny random ZImagePipeline on the CPU.

The last test runs the real weights, and only where CUDA and the weights are present.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.errors import GenerationError, WeightsMissing
from pipeline.generators import zimage, zimage_device, zimage_weights
from pipeline.generators.zimage import ZImageGenerator
from pipeline.generators.zimage_lora import LoraAdapters
from pipeline.generators.zimage_memory import MemoryMode
from pipeline.generators.zimage_random import build_random_pipeline
from pipeline.settings import Settings, get_settings
from tests.zimage_kit import (
    PROMPT,
    SIZE,
    Recorder,
    max_difference,
    pixels,
    request,
    write_lora_files,
)

# The top-left 2x4 pixels (RGB) of seed 7 on the tiny preset, torch 2.13 / diffusers 0.42.1, CPU.
# fmt: off
PINNED_CORNER = [131, 167, 114, 123, 177, 127, 127, 173, 128, 133, 174, 128,
                 138, 162, 114, 128, 175, 130, 125, 166, 124, 131, 174, 116]
# fmt: on


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings(data_dir=tmp_path / "data", gpu_cost_per_hour=3.6)


@pytest.fixture
def tiny() -> Any:
    return build_random_pipeline("tiny")


@pytest.fixture
def generator(settings: Settings, tiny: Any) -> ZImageGenerator:
    made = ZImageGenerator(settings, pipeline=tiny)
    made.load()
    return made


@pytest.fixture
def lora_files(tmp_path: Path) -> dict[str, Path]:
    return write_lora_files(tmp_path)


# --- generating ------------------------------------------------------------------------------


def test_load_then_generate_gives_one_image_per_request_at_its_size(
    generator: ZImageGenerator,
) -> None:
    images = generator.generate([request(1), request(2, width=SIZE + 64)])

    assert [image.image.size for image in images] == [(SIZE, SIZE), (SIZE + 64, SIZE)]
    assert [image.meta["seed"] for image in images] == [1, 2]
    assert generator.warm.plan.mode is MemoryMode.CPU


def test_load_is_idempotent(generator: ZImageGenerator) -> None:
    pipeline = generator.pipeline
    generator.load()
    assert generator.pipeline is pipeline


def test_same_seed_gives_the_same_pixels_and_the_pinned_slice(
    generator: ZImageGenerator,
) -> None:
    first = generator.generate([request(7)])[0].image
    again = generator.generate([request(7)])[0].image

    assert max_difference(first, again) == 0
    # diffusers-style regression pin: a few pixels of seed 7 on the tiny preset, within tolerance.
    corner = pixels(first)[:2, :4].flatten()
    expected = np.array(PINNED_CORNER, dtype=np.int16)
    assert np.abs(corner - expected).max() <= 3, corner.tolist()


def test_different_seeds_give_different_images(generator: ZImageGenerator) -> None:
    one, two = generator.generate([request(1)])[0].image, generator.generate([request(2)])[0].image
    assert max_difference(one, two) > 10


def test_a_carousel_batch_matches_each_image_generated_alone(settings: Settings, tiny: Any) -> None:
    made = ZImageGenerator(settings.model_copy(update={"zimage_max_batch": 3}), pipeline=tiny)
    carousel = [request(3), request(4), request(5)]  # one caption, one seed per image
    together = made.generate(carousel)
    alone = [made.generate([one])[0] for one in carousel]

    assert {image.meta["batch_size"] for image in together} == {3}
    for joint, single in zip(together, alone, strict=True):
        # float32 sums over a batch may round one 8-bit level apart, never more.
        assert max_difference(joint.image, single.image) <= 1


def test_captions_of_different_padded_lengths_are_never_batched_together(
    settings: Settings, tiny: Any
) -> None:
    recorder = Recorder(tiny)
    made = ZImageGenerator(settings.model_copy(update={"zimage_max_batch": 4}), pipeline=recorder)
    twin = PROMPT.replace("sunlit", "shaded")  # same length in tokens: may share a call
    batch = [
        request(1),
        request(2, prompt="a dog"),
        request(3, prompt=twin),
        request(4, prompt=PROMPT * 2),
    ]

    images = made.generate(batch)

    assert [image.meta["seed"] for image in images] == [1, 2, 3, 4]
    seeds = [[g.initial_seed() for g in call["generator"]] for call in recorder.calls]
    assert seeds == [[1, 3], [2], [4]]
    lengths = [zimage.caption_length(tiny, text) for text in (PROMPT, twin, "a dog", PROMPT * 2)]
    assert lengths[0] == lengths[1] and len(set(lengths)) == 3


def test_requests_are_grouped_by_size_and_lora_and_come_back_in_order(
    settings: Settings, tiny: Any
) -> None:
    recorder = Recorder(tiny)
    made = ZImageGenerator(settings, pipeline=recorder)
    wide = SIZE + 64
    batch = [request(1), request(2, width=wide), request(3), request(4, width=wide)]

    images = made.generate(batch)

    assert [image.meta["seed"] for image in images] == [1, 2, 3, 4]
    assert [(call["width"], len(call["prompt_embeds"])) for call in recorder.calls] == [
        (SIZE, 2),
        (wide, 2),
    ]
    seeds = [[g.initial_seed() for g in call["generator"]] for call in recorder.calls]
    assert seeds == [[1, 3], [2, 4]]


def test_eight_steps_and_no_guidance_reach_the_pipeline(settings: Settings, tiny: Any) -> None:
    recorder = Recorder(tiny)
    forwards: list[int] = []
    tiny.transformer.register_forward_hook(lambda _m, args, _out: forwards.append(len(args[0])))

    ZImageGenerator(settings, pipeline=recorder).generate([request(1)])

    (call,) = recorder.calls
    assert call["num_inference_steps"] == 8
    assert call["guidance_scale"] == 0.0
    # Eight transformer evaluations of one latent each: no ninth step, no doubled CFG batch.
    assert forwards == [1] * 8


def test_every_image_records_its_provenance_and_cost(generator: ZImageGenerator) -> None:
    meta = generator.generate([request(9)])[0].meta

    expected = {"generator": "zimage", "preview": False, "steps": 8, "guidance": 0.0}
    assert expected.items() <= meta.items()
    assert (meta["seed"], meta["width"], meta["height"], meta["lora"]) == (9, SIZE, SIZE, None)
    assert meta["memory_mode"] == "cpu" and meta["vae_tiling"] is False
    assert meta["device"] == "cpu" and meta["gpu_name"] is None
    assert meta["peak_gpu_memory_gib"] is None
    assert meta["duration_s"] > 0
    assert meta["cost"] == pytest.approx(3.6 * meta["duration_s"] / 3600, abs=1e-6)
    json.dumps(meta)  # stored on the asset as JSON


def test_out_of_gpu_memory_is_one_line_saying_where_and_what_to_do(
    generator: ZImageGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_memory(*_: Any, **__: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\n...")

    monkeypatch.setattr(zimage, "run_pipeline", no_memory)
    with pytest.raises(GenerationError) as caught:
        generator.generate([request(1)])

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"out of GPU memory at {SIZE}x{SIZE}, batch 1, memory mode cpu")
    assert "RYLA_ZIMAGE_MEMORY_MODE=balanced" in message


def test_a_failed_encoding_names_the_encoding_and_the_errors_first_line(
    generator: ZImageGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: list[str]) -> Any:
        raise RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED\n  at some frame\n")

    monkeypatch.setattr(generator.warm, "encode", broken)
    with pytest.raises(
        GenerationError,
        match=r"^Z-Image failed at encoding 2 caption\(s\), "
        r"memory mode cpu: CUBLAS_STATUS_EXECUTION_FAILED … at some frame$",
    ):
        generator.generate([request(1), request(2)])


# --- LoRA ------------------------------------------------------------------------------------


def test_a_lora_changes_the_image_and_its_scale_matters(
    generator: ZImageGenerator, lora_files: dict[str, Path]
) -> None:
    anna = str(lora_files["anna"])
    base = generator.generate([request(1)])[0]
    full = generator.generate([request(1, lora_path=anna, lora_scale=1.0)])[0]
    half = generator.generate([request(1, lora_path=anna, lora_scale=0.5)])[0]
    off = generator.generate([request(1, lora_path=anna, lora_scale=0.0)])[0]

    assert full.meta["lora"] | {"adapter": None, "sha256": None} == {
        "path": anna,
        "scale": 1.0,
        "used": True,
        "adapter": None,
        "sha256": None,
    }
    assert max_difference(full.image, base.image) > 10
    assert max_difference(half.image, full.image) > 5
    assert max_difference(off.image, base.image) == 0


def test_loras_swap_between_calls_without_reloading_the_base(
    generator: ZImageGenerator, lora_files: dict[str, Path]
) -> None:
    anna, ben = str(lora_files["anna"]), str(lora_files["ben"])
    transformer = generator.pipeline.transformer
    base = generator.generate([request(1)])[0].image
    first_anna = generator.generate([request(1, lora_path=anna)])[0].image
    with_ben = generator.generate([request(1, lora_path=ben)])[0].image
    without = generator.generate([request(1)])[0].image
    anna_again = generator.generate([request(1, lora_path=anna)])[0].image

    assert generator.pipeline.transformer is transformer
    assert max_difference(with_ben, first_anna) > 10
    assert max_difference(without, base) == 0
    assert max_difference(anna_again, first_anna) == 0


def test_least_recently_used_loras_are_unloaded_beyond_capacity(
    tiny: Any, lora_files: dict[str, Path]
) -> None:
    adapters = LoraAdapters(tiny, capacity=2)
    for label in ("anna", "ben", "cleo"):
        assert adapters.activate(str(lora_files[label]), 1.0)["used"] is True

    assert len(adapters.loaded) == 2
    assert set(tiny.transformer.peft_config) == set(adapters.loaded)
    assert adapters.activate(str(lora_files["anna"]), 1.0)["used"] is True  # read again


def test_a_missing_lora_file_generates_without_it_and_says_so(
    generator: ZImageGenerator, tmp_path: Path
) -> None:
    gone = str(tmp_path / "deleted.safetensors")
    base = generator.generate([request(1)])[0]
    image = generator.generate([request(1, lora_path=gone)])[0]

    assert image.meta["lora"] == {
        "path": gone,
        "scale": 1.0,
        "used": False,
        "reason": "file not found",
    }
    assert max_difference(image.image, base.image) == 0


def test_a_lora_that_is_not_safetensors_is_refused_unopened(
    generator: ZImageGenerator, tmp_path: Path
) -> None:
    pickle = tmp_path / "anna.ckpt"
    pickle.write_bytes(b"\x80\x04 not to be unpickled")
    image = generator.generate([request(1, lora_path=str(pickle))])[0]

    assert image.meta["lora"]["used"] is False
    assert image.meta["lora"]["reason"].startswith("not a .safetensors file (.ckpt): refused")


def test_a_broken_lora_file_falls_back_to_the_base_model(
    generator: ZImageGenerator, tmp_path: Path, lora_files: dict[str, Path]
) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    base = generator.generate([request(1)])[0].image
    image = generator.generate([request(1, lora_path=str(broken))])[0]
    anna = generator.generate([request(1, lora_path=str(lora_files["anna"]))])[0]

    assert image.meta["lora"]["used"] is False
    assert image.meta["lora"]["reason"].startswith("failed to load: ")
    assert max_difference(image.image, base) == 0
    assert anna.meta["lora"]["used"] is True  # a bad file leaves the adapters usable


# --- weights, availability, memory -----------------------------------------------------------


def test_missing_weights_raise_one_line_saying_how_to_get_them(tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path, zimage_path=tmp_path / "no-weights-here")

    with pytest.raises(WeightsMissing) as raised:
        ZImageGenerator(settings).load()

    message = str(raised.value)
    assert "\n" not in message
    assert str(tmp_path / "no-weights-here") in message
    assert "ryla model download" in message and "RYLA_ZIMAGE_PATH" in message


def test_weights_absent_from_the_hf_cache_are_reported_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    settings = get_settings(data_dir=tmp_path, zimage_model_id="ryla-tests/not-downloaded")

    with pytest.raises(
        WeightsMissing, match="ryla-tests/not-downloaded@main are not in the Hugging"
    ):
        zimage.resolve_weights(settings)


def write_weights(folder: Path) -> Path:
    (folder / "model_index.json").parent.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text("{}")
    for part in ("scheduler", "tokenizer", "text_encoder", "transformer", "vae"):
        (folder / part).mkdir()
    for part in ("text_encoder", "transformer", "vae"):
        (folder / part / "model.safetensors").write_bytes(b"")
    return folder


def test_weights_are_found_in_the_hf_cache_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--Tongyi-MAI--Z-Image-Turbo"
    write_weights(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))

    folder, revision = zimage.resolve_weights(get_settings(data_dir=tmp_path))

    assert (folder, revision) == (repo / "snapshots" / commit, commit)


def test_an_incomplete_weights_folder_names_the_missing_shard(tmp_path: Path) -> None:
    folder = write_weights(tmp_path / "weights")
    index = {"weight_map": {"a": "shard-1.safetensors", "b": "shard-2.safetensors"}}
    (folder / "transformer" / "model.safetensors.index.json").write_text(json.dumps(index))
    settings = get_settings(data_dir=tmp_path, zimage_path=folder)

    with pytest.raises(WeightsMissing, match=r"transformer/ lacks 2 shard\(s\)"):
        zimage.resolve_weights(settings)


def test_availability_needs_both_a_gpu_and_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_weights = get_settings(data_dir=tmp_path, zimage_path=write_weights(tmp_path / "w"))
    without = get_settings(data_dir=tmp_path, zimage_path=tmp_path / "nothing")

    monkeypatch.setattr(zimage_weights, "cuda_device_count", lambda: 0)
    assert zimage.availability(with_weights) == (False, "no CUDA device is visible")
    monkeypatch.setattr(zimage_weights, "cuda_device_count", lambda: 1)
    usable, reason = zimage.availability(without)
    assert not usable and "RYLA_ZIMAGE_PATH" in reason
    usable, reason = zimage.availability(with_weights)
    assert usable and str(tmp_path / "w") in reason


def test_download_fetches_the_repo_and_revision_into_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: dict[str, Any] = {}

    def fake_download(repo_id: str, **kwargs: Any) -> str:
        asked.update(kwargs, repo_id=repo_id)
        return str(write_weights(kwargs["local_dir"]))

    monkeypatch.setattr(zimage_weights, "snapshot_download", fake_download)
    target = tmp_path / "weights"
    settings = get_settings(data_dir=tmp_path, zimage_path=target, zimage_revision="v1")

    assert zimage.download_weights(settings) == target
    assert (asked["repo_id"], asked["revision"]) == ("Tongyi-MAI/Z-Image-Turbo", "v1")
    assert "transformer/*" in asked["allow_patterns"]


def test_vae_tiling_switches_on_above_two_megapixels(tiny: Any) -> None:
    assert zimage_device.set_vae_tiling(tiny, 1024, 1024) is False
    assert tiny.vae.use_tiling is False
    assert zimage_device.set_vae_tiling(tiny, 2048, 1152) is True
    assert tiny.vae.use_tiling is True


def test_importing_the_generators_leaves_torch_and_cuda_alone() -> None:
    code = (
        "import sys, pipeline.generators as g; assert 'torch' not in sys.modules; "
        "import pipeline.generators.zimage, torch; assert not torch.cuda.is_initialized()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# --- the real model --------------------------------------------------------------------------


@pytest.mark.gpu
def test_real_weights_make_a_reproducible_image_on_the_gpu() -> None:
    settings = get_settings()
    usable, reason = zimage.availability(settings)
    if not usable:
        pytest.skip(f"needs CUDA and the Z-Image weights: {reason}")
    generator = ZImageGenerator(settings)
    portrait = request(42, width=896, height=1120)

    first, again = generator.generate([portrait])[0], generator.generate([portrait])[0]

    assert first.image.size == (896, 1120)
    assert pixels(first.image).std() > 20  # a picture, not a flat or black frame
    assert max_difference(first.image, again.image) <= 2
    assert first.meta["dtype"] == "bfloat16" and first.meta["steps"] == 8
    assert first.meta["gpu_name"] and first.meta["peak_gpu_memory_gib"] > 1
