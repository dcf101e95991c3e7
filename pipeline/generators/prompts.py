"""Prompt building: a character's fixed identity + a scene + an environment + an outfit.

Ships RYLA's 8 scene presets and 7 environment presets; unknown names are errors, not guesses.
"""

from __future__ import annotations

from dataclasses import dataclass

from models import Character
from pipeline.errors import PromptError

__all__ = ["ENVIRONMENTS", "SCENES", "Identity", "PromptParts", "build_prompt"]

SCENES: dict[str, str] = {
    "morning_coffee": "sipping coffee by a window in soft morning light, relaxed smile",
    "workout": "mid-workout in athletic wear, energetic pose, light sweat",
    "city_walk": "walking confidently down a street, candid mid-stride shot",
    "golden_hour": "portrait at golden hour, warm rim light, looking over the shoulder",
    "beach_day": "on the sand by the sea, wind in the hair, sunny and carefree",
    "night_out": "dressed up for the evening, city lights bokeh behind",
    "cozy_home": "curled up on a sofa with a book and a blanket, cozy mood",
    "travel": "exploring a landmark abroad with a small backpack, sense of wonder",
}

ENVIRONMENTS: dict[str, str] = {
    "studio": "clean photo studio, seamless backdrop, softbox lighting",
    "urban": "modern city street, glass facades, natural daylight",
    "beach": "sunlit beach, turquoise water, soft sand",
    "nature": "green forest trail, dappled sunlight through leaves",
    "cafe": "stylish cafe interior, warm wood, plants, window light",
    "home": "bright minimalist apartment, neutral tones, large windows",
    "rooftop": "rooftop terrace at dusk, skyline view, string lights",
}

_STYLE = "photorealistic, 35mm photo, natural skin texture, sharp focus, Instagram style"
_NEGATIVE = "blurry, deformed hands, extra fingers, watermark, text, logo, lowres, cartoon"


@dataclass(frozen=True)
class Identity:
    """What stays the same in every image of a character."""

    identity_prompt: str = ""
    appearance: tuple[str, ...] = ()
    default_outfit: str = ""
    negative_prompt: str = ""
    trigger_word: str = ""

    @classmethod
    def from_character(cls, character: Character) -> Identity:
        appearance = (
            character.age,
            character.ethnicity,
            character.hair,
            character.eyes,
            character.body,
            character.features,
        )
        return cls(
            identity_prompt=character.identity_prompt,
            appearance=tuple(part for part in appearance if part),
            default_outfit=character.default_outfit,
            negative_prompt=character.negative_prompt,
            trigger_word=character.trigger_word,
        )


@dataclass(frozen=True)
class PromptParts:
    prompt: str
    negative_prompt: str


def _preset(kind: str, presets: dict[str, str], name: str) -> str:
    if not name:
        return ""
    if name not in presets:
        raise PromptError(f"unknown {kind} {name!r}: choose one of {', '.join(sorted(presets))}")
    return presets[name]


def build_prompt(
    identity: Identity, *, scene: str = "", environment: str = "", outfit: str = "", extra: str = ""
) -> PromptParts:
    """Join the parts in a fixed order: trigger word and identity first, so they weigh most."""
    parts = [
        identity.trigger_word,
        identity.identity_prompt,
        ", ".join(identity.appearance),
        f"wearing {outfit or identity.default_outfit}"
        if (outfit or identity.default_outfit)
        else "",
        _preset("scene", SCENES, scene),
        _preset("environment", ENVIRONMENTS, environment),
        extra,
        _STYLE,
    ]
    negative = ", ".join(p for p in (identity.negative_prompt, _NEGATIVE) if p)
    return PromptParts(
        prompt=", ".join(p.strip() for p in parts if p.strip()), negative_prompt=negative
    )
