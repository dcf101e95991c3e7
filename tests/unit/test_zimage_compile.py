"""Z-Image compiled and warm, on the CPU. Dynamo traces the real blocks with its ``eager`` backend
(the same graphs and guards as inductor, without code generation), so these tests show that the
warm-up builds every graph, that no post then waits for a compile, that fused LoRAs keep the
graphs, and that the real-valued RoPE matches diffusers' complex one without complex tensors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers.models.transformers import transformer_z_image
from diffusers.models.transformers.transformer_z_image import RopeEmbedder, ZImageTransformerBlock

from pipeline.generators.zimage import ZImageGenerator, caption_length
from pipeline.generators.zimage_compile import (
    CompileCounters,
    compile_blocks,
    compile_cache_folder,
    use_compile_cache,
)
from pipeline.generators.zimage_memory import MemoryMode
from pipeline.generators.zimage_plan import warmup_calls
from pipeline.generators.zimage_random import PRESETS, build_random_pipeline
from pipeline.generators.zimage_rope import RealRopeAttention, RealRopeTable, use_real_rope
from pipeline.generators.zimage_warm import ready_line
from pipeline.settings import get_settings
from tests.zimage_kit import cpu_plan, max_difference, pixels, request, write_lora_files

# Small stand-ins for the formats' sizes: the graphs depend on which dimensions vary, not on
# how large they are, and 1 MP on a shared CPU takes seconds a call.
TEST_SIZES = ((256, 256), (320, 256), (256, 320), (288, 352))
CAPTIONS = ("a dog", "a woman with auburn hair reading in a sunlit cafe, film photo")


def latents(pipeline: Any, prompts: list[str], seeds: list[int]) -> torch.Tensor:
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    return pipeline(
        prompt=list(prompts),
        width=256,
        height=256,
        num_inference_steps=8,
        guidance_scale=0.0,
        generator=generators,
        output_type="latent",
    ).images


def run_as_traced(graph: Any, _inputs: Any) -> Any:
    """A dynamo backend that runs the traced graph as it is."""
    return graph.forward


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ZImageGenerator:
    torch._dynamo.reset()  # graphs other tests traced must not stand in for the warm-up's
    settings = get_settings(data_dir=tmp_path_factory.mktemp("data"))
    plan = cpu_plan(compile=True, max_batch=2, warmup=warmup_calls(TEST_SIZES, max_batch=2))
    made = ZImageGenerator(settings, pipeline=build_random_pipeline("tiny"), plan=plan)
    made.load()
    return made


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    files = write_lora_files(tmp_path_factory.mktemp("loras"))
    return {label: str(path) for label, path in files.items()}


# --- warm before the first post --------------------------------------------------------------


def test_without_a_warm_up_the_first_post_waits_for_compiling_and_it_is_logged(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # A backend of its own keeps its own graphs: the module's warm generator is left untouched.
    plan = dataclasses.replace(cpu_plan(compile=True), compile_backend=run_as_traced)
    cold = ZImageGenerator(get_settings(data_dir=tmp_path), build_random_pipeline("tiny"), plan)

    with caplog.at_level(logging.WARNING, logger="pipeline.generators.zimage"):
        image = cold.generate([request(1)])[0]

    assert image.meta["graphs_compiled_during_call"] > 0
    assert "compiled while a post waited (256x256, batch 1)" in caplog.text


def test_the_warm_up_compiles_every_graph_before_the_worker_is_ready(
    compiled: ZImageGenerator,
) -> None:
    ready = compiled.warm.readiness

    assert ready is not None
    assert ready.warmup_calls == len(compiled.warm.plan.warmup) == 8
    # With and without the time embedding, one image and two, fixed then dynamic lengths.
    assert ready.compiled.graphs >= 4
    assert ready.seconds >= ready.warmup_seconds > 0


def test_no_post_waits_for_a_compile_after_the_warm_up(compiled: ZImageGenerator) -> None:
    noise = random.Random(14)
    before = CompileCounters.now()
    for post in range(6):
        width, height = noise.choice(TEST_SIZES)
        caption = "".join(noise.choice("abcdefgh ,") for _ in range(noise.randint(1, 170)))
        images = noise.randint(1, 3)  # a single post or a carousel: batches of 1 and 2
        carousel = [
            request(post * 10 + item, prompt=caption, width=width, height=height)
            for item in range(images)
        ]
        for image in compiled.generate(carousel):
            assert image.meta["graphs_compiled_during_call"] == 0, (width, height, caption)
    assert CompileCounters.now().since(before).graphs == 0


def test_the_vae_decoder_is_compiled_and_warmed_up_with_the_blocks_unless_it_is_streamed(
    compiled: ZImageGenerator, tmp_path: Path
) -> None:
    assert hasattr(compiled.warm.pipeline.vae.decoder, "_ryla_compiled")
    before = CompileCounters.now()
    compiled.generate([request(3, width=TEST_SIZES[-1][0], height=TEST_SIZES[-1][1])])
    assert CompileCounters.now().since(before).graphs == 0  # its graphs came with the warm-up

    plan = cpu_plan(MemoryMode.LOW, compile=True)
    low = ZImageGenerator(get_settings(data_dir=tmp_path), build_random_pipeline("tiny"), plan)
    low.load()
    assert not hasattr(low.warm.pipeline.vae.decoder, "_ryla_compiled")


def test_fused_loras_swap_without_recompiling(
    compiled: ZImageGenerator, loras: dict[str, str]
) -> None:
    before = CompileCounters.now()
    base = compiled.generate([request(1)])[0]
    anna = compiled.generate([request(1, lora_path=loras["anna"])])[0]
    ben = compiled.generate([request(1, lora_path=loras["ben"], lora_scale=0.5)])[0]
    without = compiled.generate([request(1)])[0]
    anna_again = compiled.generate([request(1, lora_path=loras["anna"])])[0]

    assert CompileCounters.now().since(before).graphs == 0
    assert max_difference(anna.image, base.image) > 10
    assert max_difference(ben.image, anna.image) > 10
    assert max_difference(without.image, base.image) == 0  # the originals came back exactly
    assert max_difference(anna_again.image, anna.image) == 0


def test_compiled_and_eager_generators_make_the_same_image(
    compiled: ZImageGenerator, tmp_path: Path
) -> None:
    eager = ZImageGenerator(get_settings(data_dir=tmp_path), build_random_pipeline("tiny"))
    seed7 = request(7, width=320)

    assert eager.warm.plan.compile is False and compiled.warm.plan.compile is True
    assert (
        max_difference(compiled.generate([seed7])[0].image, eager.generate([seed7])[0].image) <= 1
    )


def test_the_ready_line_names_mode_attention_sizes_batches_and_times(
    compiled: ZImageGenerator,
) -> None:
    line = ready_line(compiled.warm)

    assert line.startswith("ready in ") and "warm-up" in line and "in 8 calls" in line
    assert "memory mode cpu (chosen by the test), up to 2 image(s) a call" in line
    assert "attention native, real-valued RoPE" in line
    assert "compiled for 256x256, 320x256, 256x320, 288x352 at batch 1-2" in line
    assert "transformer resident on cpu" in line


# --- the real-valued RoPE --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_real_valued_rope_makes_the_images_diffusers_complex_rope_makes(
    dtype: torch.dtype,
) -> None:
    upstream, real = build_random_pipeline("tiny", dtype), build_random_pipeline("tiny", dtype)
    swapped = use_real_rope(real.transformer)

    blocks = (
        real.transformer.noise_refiner,
        real.transformer.context_refiner,
        real.transformer.layers,
    )
    assert swapped == sum(len(stack) for stack in blocks)  # every block's attention
    ours, theirs = latents(real, list(CAPTIONS), [1, 2]), latents(upstream, list(CAPTIONS), [1, 2])
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2  # bf16: one rounding step, at most
    assert (ours.float() - theirs.float()).abs().max().item() <= tolerance


def test_the_real_valued_rope_matches_at_the_full_models_shapes() -> None:
    # One block of the real dimensions (3840 wide, 30 heads of 128, RoPE axes 32/48/48): the
    # whole 6 B model does not fit a test, and every block runs the same code.
    full = PRESETS["full"].transformer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = ZImageTransformerBlock(
            0, full["dim"], full["n_heads"], full["n_kv_heads"], 1e-5, True
        )
        block = block.to(torch.bfloat16).eval()
        positions = torch.stack([torch.randint(0, top, (128,)) for top in (300, 64, 64)], dim=1)
        x = torch.randn(1, 128, full["dim"], dtype=torch.bfloat16)
        time_embedding = torch.randn(1, 256, dtype=torch.bfloat16)
    complex_table = RopeEmbedder(
        theta=256.0, axes_dims=full["axes_dims"], axes_lens=full["axes_lens"]
    )

    with torch.no_grad():
        theirs = block(x, None, complex_table(positions)[None], time_embedding).float()
        block.attention.set_processor(RealRopeAttention())
        ours = block(
            x, None, RealRopeTable.replacing(complex_table)(positions)[None], time_embedding
        )
    ours = ours.float()

    # bfloat16 keeps 8 bits: where the float32 sums differ in their last bit, an output moves one
    # rounding step. Measured: 0.6 % of outputs, by one step, 3e-4 of the output's norm.
    moved = ours - theirs
    assert moved.abs().max().item() <= 2 * 2**-7 * theirs.abs().max().item()
    assert (moved.norm() / theirs.norm()).item() < 1e-3
    assert (moved != 0).float().mean().item() < 0.02


def complex_values_traced(real_rope: bool) -> list[str]:
    """The operations in the compiled blocks' graphs that hold complex tensors."""
    graphs: list[Any] = []

    def capture(graph: Any, _inputs: Any) -> Any:
        graphs.append(graph)
        return graph.forward

    tiny = build_random_pipeline("tiny")
    tiny.transformer.requires_grad_(False)
    if real_rope:
        use_real_rope(tiny.transformer)
    compile_blocks(tiny.transformer, backend=capture)
    latents(tiny, ["a cat"], [0])
    return [
        str(node.target)
        for graph in graphs
        for node in graph.graph.nodes
        if isinstance(value := node.meta.get("example_value"), torch.Tensor) and value.is_complex()
    ]


def test_with_the_real_valued_rope_no_complex_tensor_reaches_the_compiler() -> None:
    # Inductor generates no code for complex operators: they would run as separate eager kernels.
    assert any("view_as_complex" in name for name in complex_values_traced(real_rope=False))
    assert complex_values_traced(real_rope=True) == []


# --- batches ---------------------------------------------------------------------------------


def test_diffusers_masks_padded_captions_so_mixed_lengths_match_in_float32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tiny = build_random_pipeline("tiny")
    alone = torch.cat([latents(tiny, [caption], [seed]) for seed, caption in enumerate(CAPTIONS)])

    batched = latents(tiny, list(CAPTIONS), [0, 1])
    assert (batched - alone).abs().max().item() < 1e-5

    # The check has teeth: the same batch with the padding left unmasked is far off.
    upstream = transformer_z_image.ZSingleStreamAttnProcessor.__call__

    def unmasked_attention(
        self: Any,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Any = None,
        attention_mask: Any = None,
        freqs_cis: Any = None,
    ) -> torch.Tensor:
        return upstream(self, attn, hidden_states, encoder_hidden_states, None, freqs_cis)

    monkeypatch.setattr(
        transformer_z_image.ZSingleStreamAttnProcessor, "__call__", unmasked_attention
    )
    unmasked = latents(tiny, list(CAPTIONS), [0, 1])
    assert (unmasked - alone).abs().max().item() > 1e-2


def test_a_bfloat16_batch_stays_within_rounding_of_each_image_alone(tmp_path: Path) -> None:
    # In bfloat16 a batch's matmuls round differently from one image's (on any card): a few
    # pixels move a few levels, the picture does not. A wrong seed or caption would move all.
    made = ZImageGenerator(
        get_settings(data_dir=tmp_path), build_random_pipeline("tiny", torch.bfloat16)
    )
    carousel = [request(seed, prompt=CAPTIONS[1]) for seed in (3, 4)]

    together = made.generate(carousel)
    alone = [made.generate([one])[0] for one in carousel]

    assert [image.meta["batch_size"] for image in together] == [2, 2]
    for joint, single in zip(together, alone, strict=True):
        moved = np.abs(pixels(joint.image) - pixels(single.image))
        assert moved.mean() < 1.0 and moved.max() <= 16
    assert max_difference(together[0].image, alone[1].image) > 40  # swapped seeds: far apart


def test_caption_length_is_the_length_the_transformer_sees() -> None:
    tiny = build_random_pipeline("tiny")
    seen: list[int] = []
    tiny.transformer.register_forward_pre_hook(
        lambda _module, args: seen.extend(len(caption) for caption in args[2])
    )
    for caption in ("", "a dog", CAPTIONS[1], "x" * 170):
        seen.clear()
        latents(tiny, [caption], [0])
        padded = -(-seen[0] // 32) * 32  # the transformer pads each caption to a multiple of 32
        assert caption_length(tiny, caption) == padded, caption


# --- the compile cache -----------------------------------------------------------------------


def test_the_compile_cache_is_the_setting_else_torchs_own_variable_else_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    settings = get_settings(data_dir=tmp_path / "data")
    assert compile_cache_folder(settings) == (tmp_path / "data" / "compile-cache", "RYLA_DATA_DIR")

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "torch"))
    assert compile_cache_folder(settings) == (tmp_path / "torch", "TORCHINDUCTOR_CACHE_DIR")

    chosen = settings.model_copy(update={"zimage_compile_cache_dir": tmp_path / "kept"})
    assert compile_cache_folder(chosen) == (tmp_path / "kept", "RYLA_ZIMAGE_COMPILE_CACHE_DIR")


def test_using_the_compile_cache_points_inductor_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    use_compile_cache(tmp_path / "compile-cache")

    assert (tmp_path / "compile-cache").is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "compile-cache")
    assert cache_dir() == str(tmp_path / "compile-cache")
