"""Z-Image's memory modes and run plan, on the CPU: the mode chosen from a free-memory figure, the
offloading hooks each mode applies, the same images from every mode, and what is compiled and
warmed up where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from pipeline.errors import GenerationError
from pipeline.generators import zimage_memory
from pipeline.generators.sizes import NATIVE_SIZES
from pipeline.generators.zimage import ZImageGenerator
from pipeline.generators.zimage_lora import FusedLora, LoraAdapters
from pipeline.generators.zimage_memory import (
    MemoryMode,
    choose_memory_mode,
    needed_gib,
    place_pipeline,
    placement,
)
from pipeline.generators.zimage_plan import WARMUP_PROMPTS, plan_runtime, warmup_calls
from pipeline.generators.zimage_random import build_random_pipeline
from pipeline.settings import Settings, get_settings
from tests.unit.conftest import Invoke
from tests.zimage_kit import cpu_plan, max_difference, request, write_lora_files

CPU = torch.device("cpu")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings(data_dir=tmp_path / "data")


def auto(free: float, total: float, max_batch: int = 2) -> Any:
    return choose_memory_mode("auto", free_gib=free, total_gib=total, max_batch=max_batch)


# --- choosing a mode from the free memory ----------------------------------------------------


@pytest.mark.parametrize(
    ("free", "total", "mode", "max_batch"),
    [
        (139.0, 139.8, MemoryMode.FULL, 2),  # an H200
        (78.5, 79.6, MemoryMode.FULL, 2),  # an H100 / A100 80 GB
        (23.4, 23.6, MemoryMode.FULL, 1),  # a 24 GB card: full fits, a second image does not
        (15.5, 15.9, MemoryMode.BALANCED, 1),  # a 16 GB card
        (11.2, 11.7, MemoryMode.LOW, 2),  # a 12 GB card: room for a second image
        (3.6, 3.9, MemoryMode.LOW, 1),  # a 4 GB card
    ],
)
def test_auto_picks_the_fastest_mode_that_fits_the_free_memory(
    free: float, total: float, mode: MemoryMode, max_batch: int
) -> None:
    choice = auto(free, total)

    assert (choice.mode, choice.max_batch) == (mode, max_batch)
    assert choice.reason.startswith(f"auto: {free:.1f} GiB free of {total:.1f} GiB")


def test_auto_says_why_the_faster_modes_were_passed_over() -> None:
    reason = auto(15.5, 15.9).reason

    assert reason == "auto: 15.5 GiB free of 15.9 GiB; full needs 22.5 GiB"
    assert auto(7.0, 8.0).reason.endswith("full needs 22.5 GiB; balanced needs 15.0 GiB")


def test_each_mode_needs_its_measured_peak_plus_headroom() -> None:
    assert needed_gib(MemoryMode.FULL) == pytest.approx(21.7 + 0.8)
    # Batches of 2 and 4 peaked at 24.1 and 28.8 GiB: the per-image step is within 0.1 GiB.
    assert needed_gib(MemoryMode.FULL, batch=2) - 0.8 == pytest.approx(24.1, abs=0.1)
    assert needed_gib(MemoryMode.FULL, batch=4) - 0.8 == pytest.approx(28.8, abs=0.1)
    assert needed_gib(MemoryMode.BALANCED) <= 16 - 0.5  # a 16 GB card keeps ~0.5 GiB for CUDA
    assert needed_gib(MemoryMode.LOW) <= 4 - 0.4


def test_a_card_too_small_even_for_low_mode_is_refused_in_one_line() -> None:
    with pytest.raises(GenerationError) as raised:
        auto(2.1, 4.0)

    message = str(raised.value)
    assert "\n" not in message
    assert "2.1 GiB free of 4.0 GiB" in message and "low mode needs 3.4 GiB" in message
    assert "RYLA_GENERATOR=preview" in message


def test_an_explicit_mode_is_kept_and_warns_when_it_will_not_fit() -> None:
    kept = choose_memory_mode("balanced", free_gib=139.0, total_gib=139.8, max_batch=4)
    tight = choose_memory_mode("full", free_gib=15.5, total_gib=15.9, max_batch=2)

    assert (kept.mode, kept.max_batch) == (MemoryMode.BALANCED, 4)
    assert kept.reason == "RYLA_ZIMAGE_MEMORY_MODE=balanced, 139.0 GiB free of 139.8 GiB"
    assert tight.mode is MemoryMode.FULL and tight.max_batch == 1
    assert tight.reason.endswith("full needs 22.5 GiB: expect out-of-memory errors")


def test_the_batch_limit_follows_the_setting_and_the_memory() -> None:
    assert auto(139.0, 139.8, max_batch=4).max_batch == 4
    assert auto(26.0, 32.0, max_batch=4).max_batch == 2  # 3 images would need 27.2 GiB
    assert auto(139.0, 139.8, max_batch=1).max_batch == 1


def test_without_cuda_everything_stays_on_the_cpu() -> None:
    choice = choose_memory_mode("low", free_gib=None, total_gib=None, max_batch=2)
    assert choice.mode is MemoryMode.CPU and "no CUDA" in choice.reason


# --- the setting -----------------------------------------------------------------------------


def test_the_removed_offload_mode_is_refused_saying_what_replaced_it(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"offload was removed .* use balanced for 16 GB"):
        Settings(data_dir=tmp_path, zimage_memory_mode="offload")  # type: ignore[arg-type]


def test_a_bad_memory_mode_stops_the_cli_with_one_error_line(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYLA_ZIMAGE_MEMORY_MODE", "offload")
    result = ryla("status")

    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: setting RYLA_ZIMAGE_MEMORY_MODE: ")
    assert "use balanced for 16 GB cards, low for 4 GB cards, or auto" in line


def test_an_unknown_memory_mode_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="'auto', 'full', 'balanced' or 'low'"):
        Settings(data_dir=tmp_path, zimage_memory_mode="fast")  # type: ignore[arg-type]


# --- the plan: compiled where, warmed up at which sizes --------------------------------------


def h200_plan(settings: Settings) -> Any:
    return plan_runtime(settings, device_type="cuda", free_gib=139.0, total_gib=139.8)


def test_cuda_is_compiled_by_default_and_warmed_up_at_every_format_size(
    settings: Settings,
) -> None:
    plan = h200_plan(settings)

    assert plan.compile and plan.real_rope and plan.compile_backend == "inductor"
    assert set(plan.warmup_sizes) == set(NATIVE_SIZES.values())
    for batch in (1, 2):
        calls = [call for call in plan.warmup if len(call.prompts) == batch]
        # Every format's size at every batch size, and captions of two lengths for each.
        assert {(call.width, call.height) for call in calls} == set(NATIVE_SIZES.values())
        assert len({call.prompts[0] for call in calls}) >= 2


def test_warm_up_batches_never_mix_caption_lengths() -> None:
    for call in warmup_calls(NATIVE_SIZES.values(), max_batch=4):
        assert len(set(call.prompts)) == 1
    assert len(set(map(len, WARMUP_PROMPTS))) == len(WARMUP_PROMPTS)


def test_the_compile_setting_turns_compiling_off(settings: Settings) -> None:
    plan = h200_plan(settings.model_copy(update={"zimage_compile": False}))

    assert not plan.compile and not plan.real_rope
    assert plan.compile_reason == "RYLA_ZIMAGE_COMPILE=false"
    # Still one call before the first post: CUDA libraries set themselves up on first use.
    assert [len(call.prompts) for call in plan.warmup] == [1]


def test_low_mode_is_not_compiled_and_says_why(settings: Settings) -> None:
    plan = plan_runtime(settings, device_type="cuda", free_gib=3.9, total_gib=4.0)

    assert plan.mode is MemoryMode.LOW and not plan.compile
    assert "copies" in plan.compile_reason


def test_the_cpu_is_neither_compiled_nor_warmed_up(settings: Settings) -> None:
    plan = plan_runtime(settings, device_type="cpu", free_gib=None, total_gib=None)

    assert plan.mode is MemoryMode.CPU and not plan.compile and plan.warmup == ()


# --- the hooks each mode applies -------------------------------------------------------------


def offloaded(module: Any) -> dict[str, str]:
    """Each submodule carrying a group-offloading hook, with its level."""
    found = {}
    for name, submodule in module.named_modules():
        registry = getattr(submodule, "_diffusers_hook", None)
        hook = registry.get_hook("group_offloading") if registry else None
        if hook is not None:
            found[name] = hook.config.offload_type.value
    return found


def test_full_mode_keeps_every_component_resident() -> None:
    tiny = build_random_pipeline("tiny")
    place_pipeline(tiny, MemoryMode.FULL, CPU)

    assert set(placement(tiny).values()) == {"resident on cpu"}
    assert not any(
        offloaded(getattr(tiny, name)) for name in ("text_encoder", "transformer", "vae")
    )


def test_balanced_mode_streams_the_text_encoder_leaf_by_leaf_and_nothing_else() -> None:
    tiny = build_random_pipeline("tiny")
    place_pipeline(tiny, MemoryMode.BALANCED, CPU)
    linears = [
        name for name, m in tiny.text_encoder.named_modules() if isinstance(m, torch.nn.Linear)
    ]

    assert placement(tiny)["text_encoder"] == ("streamed (leaf_level), token table in host memory")
    assert set(linears) <= set(offloaded(tiny.text_encoder))
    assert set(offloaded(tiny.text_encoder).values()) == {"leaf_level"}
    assert offloaded(tiny.transformer) == {} and offloaded(tiny.vae) == {}


def test_low_mode_streams_every_block_of_every_component() -> None:
    tiny = build_random_pipeline("tiny")
    place_pipeline(tiny, MemoryMode.LOW, CPU)
    transformer = offloaded(tiny.transformer)

    where = placement(tiny)
    assert where["text_encoder"] == "streamed (block_level), token table in host memory"
    assert where["transformer"] == where["vae"] == "streamed (block_level)"
    blocks = [f"layers.{i}" for i in range(len(tiny.transformer.layers))]
    assert set(blocks) <= set(transformer) and set(transformer.values()) == {"block_level"}
    assert {f"layers.{i}" for i in range(len(tiny.text_encoder.layers))} <= set(
        offloaded(tiny.text_encoder)
    )


def test_on_cuda_the_streamed_groups_are_copied_on_side_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[dict[str, Any]] = []
    monkeypatch.setattr(zimage_memory, "apply_group_offloading", lambda _m, **kw: asked.append(kw))
    tiny = build_random_pipeline("tiny")
    monkeypatch.setattr(tiny.transformer, "to", lambda *_: tiny.transformer)
    monkeypatch.setattr(tiny.vae, "to", lambda *_: tiny.vae)

    place_pipeline(tiny, MemoryMode.BALANCED, torch.device("cuda"))

    (options,) = asked
    assert options["use_stream"] and options["non_blocking"]
    assert options["onload_device"] == torch.device("cuda")
    assert options["offload_type"] == "leaf_level"


@pytest.mark.parametrize("mode", [MemoryMode.FULL, MemoryMode.BALANCED, MemoryMode.LOW])
def test_every_mode_makes_the_same_image(settings: Settings, mode: MemoryMode) -> None:
    reference = ZImageGenerator(settings, pipeline=build_random_pipeline("tiny"))
    placed = ZImageGenerator(settings, pipeline=build_random_pipeline("tiny"), plan=cpu_plan(mode))

    image = placed.generate([request(7)])[0]

    assert image.meta["memory_mode"] == str(mode)
    assert max_difference(image.image, reference.generate([request(7)])[0].image) == 0


def test_a_lora_is_fused_into_resident_weights_and_added_to_streamed_ones(
    settings: Settings, tmp_path: Path
) -> None:
    anna = str(write_lora_files(tmp_path)["anna"])
    resident = ZImageGenerator(settings, pipeline=build_random_pipeline("tiny"))
    streamed = ZImageGenerator(
        settings, pipeline=build_random_pipeline("tiny"), plan=cpu_plan(MemoryMode.LOW)
    )

    fused = resident.generate([request(1, lora_path=anna, lora_scale=0.8)])[0]
    added = streamed.generate([request(1, lora_path=anna, lora_scale=0.8)])[0]
    base = streamed.generate([request(1)])[0]

    assert isinstance(resident.warm.loras, FusedLora)
    assert isinstance(streamed.warm.loras, LoraAdapters)
    assert fused.meta["lora"]["used"] and added.meta["lora"]["used"]
    assert max_difference(fused.image, base.image) > 10
    assert max_difference(fused.image, added.image) <= 1  # merged weights, same function
