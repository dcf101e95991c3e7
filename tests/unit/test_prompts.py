"""The prompt builder joins identity, scene, environment and outfit in a fixed order."""

from __future__ import annotations

import pytest

from pipeline.errors import PromptError
from pipeline.generators.prompts import ENVIRONMENTS, SCENES, Identity, build_prompt


def test_ships_eight_scene_and_seven_environment_presets() -> None:
    assert len(SCENES) == 8
    assert len(ENVIRONMENTS) == 7


def test_trigger_word_and_identity_lead_the_prompt() -> None:
    identity = Identity(
        identity_prompt="a 26 year old woman", appearance=("auburn hair",), trigger_word="m1a"
    )
    parts = build_prompt(identity, scene="beach_day", environment="beach", outfit="a red dress")
    assert parts.prompt.startswith("m1a, a 26 year old woman, auburn hair, wearing a red dress, ")
    assert SCENES["beach_day"] in parts.prompt
    assert parts.prompt.index(SCENES["beach_day"]) < parts.prompt.index(ENVIRONMENTS["beach"])


def test_default_outfit_is_used_when_the_post_names_none() -> None:
    parts = build_prompt(Identity(default_outfit="a cream sweater"))
    assert "wearing a cream sweater" in parts.prompt


def test_character_negative_prompt_comes_before_the_house_negative() -> None:
    parts = build_prompt(Identity(negative_prompt="glasses"))
    assert parts.negative_prompt.startswith("glasses, ")
    assert "deformed hands" in parts.negative_prompt


@pytest.mark.parametrize(
    ("kind", "kwargs"), [("scene", {"scene": "moon"}), ("environment", {"environment": "mars"})]
)
def test_an_unknown_preset_is_an_error_naming_the_choices(
    kind: str, kwargs: dict[str, str]
) -> None:
    with pytest.raises(PromptError, match=f"unknown {kind} .*choose one of"):
        build_prompt(Identity(), **kwargs)
