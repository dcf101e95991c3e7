"""Captions are encoded once per generator call, at their own length, to what diffusers computes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

from pipeline.generators.zimage import ZImageGenerator
from pipeline.generators.zimage_captions import (
    ENCODE_ROWS,
    ENCODE_TOKENS,
    MAX_CAPTION_TOKENS,
    encode_captions,
)
from pipeline.generators.zimage_memory import (
    HostEmbedding,
    MemoryMode,
    place_pipeline,
    placement,
)
from pipeline.generators.zimage_random import build_random_pipeline
from pipeline.settings import Settings, get_settings
from tests.zimage_kit import PROMPT, cpu_plan, max_difference, request

CPU = torch.device("cpu")
# Token lengths from a handful to past the 512 cut, so the padding inside one pass varies.
CAPTIONS = ("", "a dog", PROMPT, PROMPT + ", golden hour, candid smile", "x" * 600)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings(data_dir=tmp_path / "data")


def forwards(module: torch.nn.Module) -> list[int]:
    """The batch size of every forward call the module makes from now on."""
    seen: list[int] = []
    module.register_forward_hook(
        lambda _module, _args, kwargs, _out: seen.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True,
    )
    return seen


def grouped_tensors(module: torch.nn.Module) -> set[int]:
    """Storage addresses of every tensor some group-offloading hook below ``module`` moves."""
    found: set[int] = set()
    for submodule in module.modules():
        registry = getattr(submodule, "_diffusers_hook", None)
        hook = registry.get_hook("group_offloading") if registry is not None else None
        if hook is None:
            continue
        group = hook.group
        tensors = [*(group.parameters or []), *(group.buffers or [])]
        for member in group.modules:
            tensors += [*member.parameters(), *member.buffers()]
        found |= {tensor.data_ptr() for tensor in tensors}
    return found


def test_each_caption_encodes_to_what_diffusers_computes_for_it_alone() -> None:
    """All in one pass, right-padded to the longest: padding on the left would fail this."""
    tiny = build_random_pipeline("tiny")

    ours = encode_captions(tiny, CAPTIONS, CPU)  # one pass: every length padded to the longest

    for caption in CAPTIONS:
        (theirs,), _ = tiny.encode_prompt(caption, CPU, do_classifier_free_guidance=False)
        assert ours[caption].shape == theirs.shape, caption
        assert (ours[caption] - theirs).abs().max().item() < 1e-5, caption
    assert ours["x" * 600].shape[0] == MAX_CAPTION_TOKENS  # cut where diffusers cuts


def test_encoder_passes_stay_within_their_row_and_token_limits() -> None:
    tiny = build_random_pipeline("tiny")
    widths: list[tuple[int, int]] = []
    tiny.text_encoder.register_forward_hook(
        lambda _m, _a, kwargs, _o: widths.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    long = ["x" * 600 + str(n) for n in range(6)]  # 512 tokens each: four to a pass

    encode_captions(tiny, [*long, "a dog"], CPU)

    assert widths == [(4, 512), (3, 512)]
    assert all(rows <= ENCODE_ROWS and rows * width <= ENCODE_TOKENS for rows, width in widths)


def test_a_carousel_split_over_calls_encodes_its_caption_once(settings: Settings) -> None:
    tiny = build_random_pipeline("tiny")
    made = ZImageGenerator(settings, pipeline=tiny, plan=cpu_plan(max_batch=1))
    made.load()
    passes = forwards(tiny.text_encoder)
    carousel = [request(seed) for seed in (1, 2, 3)] + [request(4, prompt="a dog")]

    images = made.generate(carousel)

    assert passes == [2]  # two distinct captions, one pass, for four pipeline calls
    assert [image.meta["batch_size"] for image in images] == [1, 1, 1, 1]
    alone = ZImageGenerator(settings, pipeline=build_random_pipeline("tiny"))
    for image, asked in zip(images, carousel, strict=True):
        # Encoded beside another caption, float32 sums may round one 8-bit level apart.
        assert max_difference(image.image, alone.generate([asked])[0].image) <= 1


def test_many_captions_are_encoded_in_passes_of_bounded_size() -> None:
    tiny = build_random_pipeline("tiny")
    passes = forwards(tiny.text_encoder)
    captions = [f"photo number {n}" for n in range(ENCODE_ROWS + 3)] * 2

    encoded = encode_captions(tiny, captions, CPU)

    assert passes == [ENCODE_ROWS, 3] and len(encoded) == ENCODE_ROWS + 3


@pytest.mark.parametrize("mode", [MemoryMode.BALANCED, MemoryMode.LOW])
def test_a_streamed_encoder_keeps_its_token_table_in_host_memory(mode: MemoryMode) -> None:
    tiny = build_random_pipeline("tiny")
    reference = encode_captions(build_random_pipeline("tiny"), CAPTIONS, CPU)

    place_pipeline(tiny, mode, CPU)

    embedding = tiny.text_encoder.get_input_embeddings()
    assert isinstance(embedding, HostEmbedding)
    table, where = embedding.table, embedding.table.data_ptr()
    # In no offloading group, as parameter, buffer or module: no hook can copy it in.
    assert table.data_ptr() not in grouped_tensors(tiny.text_encoder)
    assert placement(tiny)["text_encoder"].endswith("token table in host memory")
    encoded = encode_captions(tiny, CAPTIONS, CPU)
    for caption in CAPTIONS:
        assert torch.equal(encoded[caption], reference[caption])
    assert embedding.table is table and table.data_ptr() == where and table.device == CPU


def test_the_table_moves_to_the_host_once_and_full_mode_keeps_it_resident() -> None:
    tiny = build_random_pipeline("tiny")
    place_pipeline(tiny, MemoryMode.FULL, CPU)
    assert isinstance(tiny.text_encoder.get_input_embeddings(), torch.nn.Embedding)

    place_pipeline(tiny, MemoryMode.BALANCED, CPU)
    first = tiny.text_encoder.get_input_embeddings()
    place_pipeline(tiny, MemoryMode.LOW, CPU)  # a benchmark moving between modes
    assert tiny.text_encoder.get_input_embeddings() is first


def test_each_image_is_charged_its_share_of_the_encoding(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = ZImageGenerator(settings, pipeline=build_random_pipeline("tiny"), plan=cpu_plan())
    made.load()
    encode = made.warm.encode

    def slow_encode(captions: list[str]) -> dict[str, Any]:
        time.sleep(0.4)
        return encode(captions)

    monkeypatch.setattr(made.warm, "encode", slow_encode)
    images = made.generate([request(1), request(2)])  # one call of two

    shares = [image.meta["encode_share_s"] for image in images]
    assert shares[0] == shares[1] >= 0.2
    assert sum(image.meta["duration_s"] for image in images) >= 0.4
    assert images[0].meta["batch_duration_s"] >= 0.4


def test_no_requests_make_no_images_and_touch_nothing(settings: Settings) -> None:
    tiny = build_random_pipeline("tiny")
    made = ZImageGenerator(settings, pipeline=tiny, plan=cpu_plan())
    made.load()
    passes = forwards(tiny.text_encoder)

    assert made.generate([]) == [] and passes == []
