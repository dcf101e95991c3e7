"""Captions checked at the door as they will be posted: a one-off's exact caption, a rule's worst.

A rule's captions are filled at planning time, so its templates are tried with the longest value
each placeholder can take (and with every outfit when a template shows the outfit).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

from models import Influencer, Post
from pipeline.captions import MAX_CAPTION_CHARS, build_caption, caption_variables, merge_hashtags
from pipeline.errors import CaptionError, InputError
from pipeline.generators.prompts import ENVIRONMENTS, SCENES
from pipeline.validation import shown

__all__ = [
    "LONGEST_DATE",
    "LONGEST_DAY",
    "check_hashtags",
    "check_influencer_captions",
    "check_post_caption",
    "check_rule_captions",
]

# What {day} and {date} can grow to (in the locale the workers format them in).
LONGEST_DAY = max((date(2001, 1, d).strftime("%A") for d in range(1, 8)), key=len)
LONGEST_DATE = max((date(2026, m, 28).strftime("%d %B %Y") for m in range(1, 13)), key=len)
_ANY_INSTANT = datetime(2026, 1, 1, tzinfo=UTC)  # {time} is always HH:MM


def check_hashtags(tags: Sequence[str], *, field: str = "hashtags") -> list[str]:
    """Hashtags as given, each one a tag Instagram keeps whole."""
    try:
        merge_hashtags(tags)
    except CaptionError as exc:
        raise InputError(str(exc), field=field) from None
    return list(tags)


def check_post_caption(*, influencer: Influencer, post: Post) -> None:
    """A one-off's caption exactly as the render step will build it."""
    _not_huge(post.caption_text, "caption_text")
    check_hashtags(post.hashtags)
    try:
        build_caption(
            template=influencer.caption_template,
            text=post.caption_text,
            variables=caption_variables(influencer=influencer, post=post),
            default_hashtags=influencer.default_hashtags,
            post_hashtags=post.hashtags,
        )
    except CaptionError as exc:
        raise InputError(
            f"the caption as it would be posted: {exc}", field="caption_text"
        ) from None


def check_influencer_captions(influencer: Influencer) -> None:
    """The influencer's template and default hashtags, with any scene and environment."""
    check_hashtags(influencer.default_hashtags, field="default_hashtags")
    variables = _longest_variables(influencer, list(SCENES), list(ENVIRONMENTS))
    _try_rule(influencer, None, "", (), variables, "")


def check_rule_captions(
    *,
    influencer: Influencer,
    caption_text: str,
    templates: Sequence[str],
    scenes: Sequence[str],
    environments: Sequence[str],
    outfits: Sequence[str],
    hashtags: Sequence[str],
) -> None:
    """Every caption a rule can produce stays within Instagram's limits."""
    _not_huge(caption_text, "caption_text")
    check_hashtags(hashtags)
    variables = _longest_variables(influencer, scenes, environments)
    for index, template in enumerate(templates or [None], start=1):
        for outfit in _outfits_to_try(influencer, template, outfits):
            where = f"caption template {index} {shown(template)}" if template else "the caption"
            if outfit:
                where += f" with outfit {shown(outfit)}"
            _try_rule(influencer, template, caption_text, hashtags, variables, outfit, where)


def _try_rule(
    influencer: Influencer,
    template: str | None,
    caption_text: str,
    hashtags: Sequence[str],
    variables: dict[str, str],
    outfit: str,
    where: str = "the influencer's caption template",
) -> None:
    filled = variables | {"outfit": outfit}
    field = "caption_templates" if template else "caption_text"
    try:
        text = caption_text
        if template is not None:  # what expansion stores as the post's text
            text = build_caption(
                template=template, text="", variables=filled, default_hashtags=(), post_hashtags=()
            ).text
        build_caption(
            template=influencer.caption_template,
            text=text,
            variables=filled,
            default_hashtags=influencer.default_hashtags,
            post_hashtags=hashtags,
        )
    except CaptionError as exc:
        if template is None and not caption_text:
            field = "caption_template"
        raise InputError(f"{where}, filled in at its longest: {exc}", field=field) from None


def _longest_variables(
    influencer: Influencer, scenes: Sequence[str], environments: Sequence[str]
) -> dict[str, str]:
    stand_in = Post(
        publish_at=_ANY_INSTANT,
        scene=_longest(scenes),
        environment=_longest(environments),
        outfit="",
    )
    variables = caption_variables(influencer=influencer, post=stand_in)
    return variables | {"day": LONGEST_DAY, "date": LONGEST_DATE}


def _outfits_to_try(
    influencer: Influencer, template: str | None, outfits: Sequence[str]
) -> Iterator[str]:
    """The longest outfit; every outfit when a template shows it (its hashtags then count)."""
    if not outfits:
        yield ""
        return
    shows = any("{outfit" in (t or "") for t in (template, influencer.caption_template))
    yield from (outfits if shows else [_longest(outfits)])


def _longest(values: Sequence[str]) -> str:
    return max(values, key=len) if values else ""


def _not_huge(text: str, field: str) -> None:
    # Said before anything is filled in: a huge text need not be scanned to be refused.
    if len(text) > MAX_CAPTION_CHARS:
        raise InputError(
            f"caption {shown(text)} is over Instagram's {MAX_CAPTION_CHARS:,} characters: "
            "shorten it",
            field=field,
        )
