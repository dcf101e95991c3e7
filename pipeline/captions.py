"""Captions: the influencer's template + the post's text + hashtags, checked against Instagram.

Hashtags are the influencer's defaults then the post's own, deduplicated with order kept.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from models import Influencer, Post
from pipeline.errors import CaptionError
from pipeline.generators.prompts import ENVIRONMENTS, SCENES

__all__ = [
    "MAX_ALT_TEXT_CHARS",
    "MAX_CAPTION_CHARS",
    "MAX_HASHTAGS",
    "MAX_MENTIONS",
    "WARN_HASHTAGS",
    "Caption",
    "build_alt_text",
    "build_caption",
    "caption_variables",
    "check_caption",
    "count_hashtags",
    "count_mentions",
    "merge_hashtags",
]

MAX_CAPTION_CHARS = 2200
MAX_HASHTAGS = 30  # the Graph API's limit
WARN_HASHTAGS = 5  # the Instagram app has allowed only 5 since December 2025
MAX_MENTIONS = 20
MAX_ALT_TEXT_CHARS = 1000

# A tag ends at the first character that is not a letter, digit or underscore; "&#39;" is not one.
_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")
_MENTION = re.compile(r"(?<![\w.@])@([A-Za-z0-9._]{1,30})")
_TAG_BODY = re.compile(r"\w+")


@dataclass(frozen=True)
class Caption:
    text: str
    hashtags: tuple[str, ...]
    alt_text: str = ""
    warnings: tuple[str, ...] = ()


def merge_hashtags(*groups: Sequence[str]) -> tuple[str, ...]:
    """``#tag`` strings, first spelling kept, later repeats (any case) dropped."""
    seen: dict[str, str] = {}
    for group in groups:
        for tag in group:
            clean = tag.strip().lstrip("#")
            if not clean:
                continue
            if not _TAG_BODY.fullmatch(clean):
                raise CaptionError(
                    f"hashtag {tag!r} would end early on Instagram: "
                    "use only letters, digits and underscores"
                )
            seen.setdefault(clean.casefold(), f"#{clean}")
    return tuple(seen.values())


def build_caption(
    *,
    template: str,
    text: str,
    variables: Mapping[str, str],
    default_hashtags: Sequence[str],
    post_hashtags: Sequence[str],
    alt_text: str = "",
) -> Caption:
    """Fill the template, append the hashtags, and check the result against Instagram's limits.

    A template without ``{text}`` gets the post's text after it. Raises CaptionError naming
    every broken limit; softer problems come back in ``Caption.warnings``.
    """
    body = _fill_template(template, {**variables, "text": text})
    if "{text}" not in template and text.strip():
        body = f"{body}\n\n{text.strip()}" if body else text.strip()
    tags = merge_hashtags(default_hashtags, post_hashtags)
    full = f"{body}\n\n{' '.join(tags)}" if tags and body else body or " ".join(tags)
    warnings = check_caption(full, alt_text=alt_text)
    return Caption(text=full, hashtags=tags, alt_text=alt_text, warnings=warnings)


def check_caption(text: str, *, alt_text: str = "") -> tuple[str, ...]:
    """The warnings for a caption that passes; CaptionError listing each limit it breaks."""
    if control := next((c for c in text + alt_text if _is_control(c)), None):
        raise CaptionError(
            f"caption holds control character U+{ord(control):04X}: remove it (line breaks and "
            "tabs are the only ones Instagram shows)"
        )
    hashtags = count_hashtags(text)
    mentions = count_mentions(text)
    broken = []
    if len(text) > MAX_CAPTION_CHARS:
        broken.append(f"{len(text):,} characters (limit {MAX_CAPTION_CHARS:,})")
    if hashtags > MAX_HASHTAGS:
        broken.append(f"{hashtags} hashtags (limit {MAX_HASHTAGS})")
    if mentions > MAX_MENTIONS:
        broken.append(f"{mentions} @mentions (limit {MAX_MENTIONS})")
    if len(alt_text) > MAX_ALT_TEXT_CHARS:
        broken.append(f"alt text of {len(alt_text):,} characters (limit {MAX_ALT_TEXT_CHARS:,})")
    if broken:
        raise CaptionError(f"caption breaks Instagram's limits: {'; '.join(broken)}: shorten it")
    if hashtags > WARN_HASHTAGS:
        return (
            f"{hashtags} hashtags: the Instagram app allows only {WARN_HASHTAGS}; "
            "the API allows up to 30",
        )
    return ()


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc" and char not in "\n\r\t"


def count_hashtags(text: str) -> int:
    """Distinct hashtags, case-insensitive, wherever they appear in the caption."""
    return len({tag.casefold() for tag in _HASHTAG.findall(text)})


def count_mentions(text: str) -> int:
    """Distinct @usernames (not e-mail addresses), case-insensitive."""
    return len({name.casefold().rstrip(".") for name in _MENTION.findall(text)})


def caption_variables(*, influencer: Influencer, post: Post) -> dict[str, str]:
    """What a caption template may use: persona, names, scene, location and the local day."""
    local = _local_time(post.publish_at, influencer.timezone)
    return {
        "persona": influencer.persona,
        "voice": influencer.voice,
        "name": influencer.display_name,
        "handle": influencer.handle,
        "scene": _words(post.scene),
        "environment": _words(post.environment),
        "location": _words(post.environment),
        "outfit": post.outfit,
        "day": local.strftime("%A"),
        "date": local.strftime("%d %B %Y").lstrip("0"),
        "time": local.strftime("%H:%M"),
    }


def build_alt_text(
    *, scene: str = "", environment: str = "", subject: str = "", extra: str = ""
) -> str:
    """A plain description for screen readers from the prompt's parts; at most 1,000 characters.

    Scene and environment may be preset names (described from the presets) or free words.
    """
    parts = [
        f"AI-generated photo of {subject.strip()}" if subject.strip() else "AI-generated photo",
        _describe(scene, SCENES),
        f"Setting: {_describe(environment, ENVIRONMENTS)}" if environment.strip() else "",
        extra.strip(),
    ]
    text = ". ".join(p.rstrip(". ") for p in parts if p.strip()) + "."
    return _shorten(text, MAX_ALT_TEXT_CHARS)


def _fill_template(template: str, values: Mapping[str, str]) -> str:
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)]
    except ValueError as exc:
        raise CaptionError(f"caption template is malformed ({exc}): check its braces") from exc
    for name, spec, conversion in fields:
        if name is None:
            continue
        # Plain names only: "{scene.__class__}" and friends could read more than we hand over.
        if not name.isidentifier():
            raise CaptionError(f"caption template field {{{name}}} is not a plain {{name}} field")
        # No format spec or conversion: "{name:x>1000000000}" would pad to a gigabyte.
        if spec or conversion:
            shown = f"{{{name}{'!' + conversion if conversion else ''}:{spec}}}".replace(":}", "}")
            raise CaptionError(
                f"caption template field {shown[:40]} has a format: write plain {{{name}}}"
            )
        if name not in values:
            raise CaptionError(
                f"caption template uses unknown variable {name!r}: "
                f"available are {', '.join(sorted(values))}"
            )
    try:
        return template.format_map(dict(values)).strip()
    except (ValueError, TypeError) as exc:
        raise CaptionError(f"caption template cannot be filled ({exc})") from exc


def _local_time(instant: datetime, timezone: str) -> datetime:
    try:
        return instant.astimezone(ZoneInfo(timezone))
    except (KeyError, ValueError) as exc:
        raise CaptionError(
            f"influencer time zone {timezone!r} is unknown: use an IANA name"
        ) from exc


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


def _describe(name: str, presets: Mapping[str, str]) -> str:
    return presets.get(name.strip(), _words(name))


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:. ")
    return f"{cut}…"
