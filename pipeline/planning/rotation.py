"""Rotation: which scene, environment, outfit and caption template a rule's n-th slot gets.

Pure arithmetic on the slot's ordinal, so every expansion of a rule yields the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Pick", "combinations", "pick_caption", "rotate"]


@dataclass(frozen=True)
class Pick:
    scene: str
    environment: str
    outfit: str


def combinations(scenes: Sequence[str], environments: Sequence[str], outfits: Sequence[str]) -> int:
    """How many distinct (scene, environment, outfit) picks a rule has: its rotation window."""
    return max(1, len(scenes)) * max(1, len(environments)) * max(1, len(outfits))


def rotate(
    n: int, scenes: Sequence[str], environments: Sequence[str], outfits: Sequence[str]
) -> Pick:
    """The n-th slot's pick: no combination repeats within ``combinations(…)`` slots in a row.

    ``n`` counts in mixed radix (scene fastest); each later digit is shifted by the ones before
    it. The shift keeps the map one-to-one and makes environment and outfit change as often as
    the scene does, instead of staying put for a whole lap of scenes.
    """
    s, e, o = max(1, len(scenes)), max(1, len(environments)), max(1, len(outfits))
    c = n % (s * e * o)
    a, rest = c % s, c // s
    b, d = rest % e, rest // e
    return Pick(
        scene=_item(scenes, a),
        environment=_item(environments, (b + a) % e),
        outfit=_item(outfits, (d + b + a) % o),
    )


def pick_caption(n: int, templates: Sequence[str]) -> str | None:
    return templates[n % len(templates)] if templates else None


def _item(options: Sequence[str], index: int) -> str:
    return options[index] if options else ""
