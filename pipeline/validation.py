"""Checks shared by every door (CLI, import, API): one function per kind of value.

Each raises ``InputError`` with one line naming the field, the value and the fix.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from pipeline.errors import InputError
from pipeline.generators.sizes import NATIVE_SIZES

__all__ = ["check_formats", "check_lead_minutes", "check_presets"]

MAX_LEAD_MINUTES = 24 * 60


def check_presets(kind: str, names: Sequence[str], presets: Collection[str]) -> list[str]:
    for name in names:
        if name not in presets:
            raise InputError(f"unknown {kind} {name!r}: choose from {', '.join(presets)}")
    return list(names)


def check_formats(given: Sequence[str]) -> list[str]:
    """Instagram formats by name, in the order given (the first sets a carousel's ratio)."""
    formats = [f.strip() for f in given if f.strip()]
    if not formats:
        raise InputError(f"no format given: choose from {', '.join(NATIVE_SIZES)}")
    return check_presets("format", formats, NATIVE_SIZES)


def check_lead_minutes(minutes: int) -> int:
    """How long before publishing a post is generated."""
    if not 0 <= minutes <= MAX_LEAD_MINUTES:
        raise InputError(f"lead time {minutes} min is out of range: use 0 to {MAX_LEAD_MINUTES}")
    return minutes
