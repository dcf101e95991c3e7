"""Captions: template + post text + hashtags, and Instagram's limits as errors and warnings.

Each broken limit is named with its numbers; a soft problem comes back as a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from models import Influencer, Post
from pipeline.captions import (
    MAX_ALT_TEXT_CHARS,
    Caption,
    build_alt_text,
    build_caption,
    caption_variables,
    check_caption,
    count_hashtags,
    count_mentions,
    merge_hashtags,
)
from pipeline.errors import CaptionError
from pipeline.generators.prompts import ENVIRONMENTS, SCENES


def _caption(
    *,
    template: str = "{text}",
    text: str = "hello",
    variables: Mapping[str, str] | None = None,
    default_hashtags: Sequence[str] = (),
    post_hashtags: Sequence[str] = (),
    alt_text: str = "",
) -> Caption:
    return build_caption(
        template=template,
        text=text,
        variables=variables or {},
        default_hashtags=default_hashtags,
        post_hashtags=post_hashtags,
        alt_text=alt_text,
    )


def _tags(count: int) -> list[str]:
    return [f"tag{i}" for i in range(count)]


def test_caption_fills_the_template_with_scene_day_location_and_persona() -> None:
    caption = _caption(
        template="{persona} here! {scene} in the {location} this {day}. {text}",
        text="Who's joining?",
        variables={
            "persona": "Lina",
            "scene": "morning coffee",
            "location": "cafe",
            "day": "Monday",
        },
    )
    assert caption.text == "Lina here! morning coffee in the cafe this Monday. Who's joining?"


def test_template_without_a_text_field_gets_the_post_text_after_it() -> None:
    caption = _caption(template="Good {day}!", text="New week.", variables={"day": "Monday"})
    assert caption.text == "Good Monday!\n\nNew week."


def test_hashtags_are_the_defaults_then_the_post_tags_deduplicated_in_order() -> None:
    caption = _caption(
        default_hashtags=["#Fitness", "morning", "ootd"],
        post_hashtags=["#coffee", "fitness", "#MORNING", "latte"],
    )
    assert caption.hashtags == ("#Fitness", "#morning", "#ootd", "#coffee", "#latte")
    assert caption.text == "hello\n\n#Fitness #morning #ootd #coffee #latte"


def test_hashtag_that_instagram_would_cut_short_is_refused() -> None:
    with pytest.raises(CaptionError, match=r"'#summer vibes'.*letters, digits and underscores"):
        merge_hashtags(["#summer vibes"])


def test_unknown_template_variable_is_an_error_naming_it_and_the_choices() -> None:
    with pytest.raises(CaptionError, match="unknown variable 'mood': available are day, text"):
        _caption(template="{mood} {text}", variables={"day": "Monday"})


def test_template_may_not_reach_into_attributes() -> None:
    with pytest.raises(CaptionError, match="not a plain"):
        _caption(template="{text.__class__}")


def test_malformed_template_is_a_caption_error() -> None:
    with pytest.raises(CaptionError, match="malformed"):
        _caption(template="{text")


def test_caption_at_exactly_the_limits_passes() -> None:
    tags = " ".join(f"#{t}" for t in _tags(30))
    mentions = " ".join(f"@user{i}" for i in range(20))
    body = f"{tags} {mentions} "
    text = body + "x" * (2200 - len(body))
    assert len(text) == 2200
    warnings = check_caption(text, alt_text="a" * MAX_ALT_TEXT_CHARS)
    assert warnings and "30 hashtags" in warnings[0]


def test_caption_over_2200_characters_names_the_limit_and_the_count() -> None:
    with pytest.raises(CaptionError, match=r"2,201 characters \(limit 2,200\)"):
        _caption(text="x" * 2201)


def test_more_than_30_hashtags_is_an_error() -> None:
    with pytest.raises(CaptionError, match=r"31 hashtags \(limit 30\)"):
        _caption(post_hashtags=_tags(31))


def test_more_than_5_hashtags_is_a_warning_not_an_error() -> None:
    caption = _caption(post_hashtags=_tags(6))
    assert len(caption.warnings) == 1
    assert "6 hashtags" in caption.warnings[0] and "only 5" in caption.warnings[0]
    assert _caption(post_hashtags=_tags(5)).warnings == ()


def test_hashtags_written_in_the_post_text_count_too() -> None:
    caption = _caption(text="#one #two #three", post_hashtags=["four", "five", "six"])
    assert count_hashtags(caption.text) == 6 and caption.warnings


def test_more_than_20_mentions_is_an_error() -> None:
    text = " ".join(f"@friend_{i}" for i in range(21))
    with pytest.raises(CaptionError, match=r"21 @mentions \(limit 20\)"):
        _caption(text=text)


def test_email_addresses_and_entities_are_not_mentions_or_hashtags() -> None:
    text = "write to hello@example.com &#39;quoted&#39; @real_person #real_tag"
    assert count_mentions(text) == 1
    assert count_hashtags(text) == 1


def test_alt_text_over_1000_characters_is_an_error() -> None:
    with pytest.raises(CaptionError, match=r"alt text of 1,001 characters \(limit 1,000\)"):
        _caption(alt_text="a" * 1001)


def test_every_broken_limit_is_named_in_one_message() -> None:
    text = " ".join(f"@p{i}" for i in range(25)) + " " + "y" * 2200
    with pytest.raises(CaptionError) as caught:
        _caption(text=text, post_hashtags=_tags(31), alt_text="z" * 1200)
    message = str(caught.value)
    for part in ("characters (limit 2,200)", "31 hashtags", "25 @mentions", "alt text of 1,200"):
        assert part in message
    assert "\n" not in message


def test_caption_variables_use_the_influencers_time_zone_for_the_day() -> None:
    influencer = Influencer(
        handle="lina", display_name="Lina", timezone="Asia/Tokyo", persona="runner", voice="warm"
    )
    # Sunday 23:30 UTC is already Monday morning in Tokyo.
    post = Post(scene="morning_coffee", environment="cafe", outfit="linen shirt",
                publish_at=datetime(2026, 11, 15, 23, 30, tzinfo=UTC))  # fmt: skip
    variables = caption_variables(influencer=influencer, post=post)
    assert variables["day"] == "Monday"
    assert variables["time"] == "08:30"
    assert variables["scene"] == "morning coffee" and variables["location"] == "cafe"
    assert variables["persona"] == "runner"


def test_unknown_time_zone_is_a_caption_error() -> None:
    influencer = Influencer(handle="x", display_name="X", timezone="Mars/Olympus")
    post = Post(scene="", environment="", outfit="", publish_at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(CaptionError, match="'Mars/Olympus'"):
        caption_variables(influencer=influencer, post=post)


def test_alt_text_describes_the_scene_and_environment_presets() -> None:
    alt = build_alt_text(scene="morning_coffee", environment="cafe", subject="Lina")
    assert alt.startswith("AI-generated photo of Lina. ")
    assert SCENES["morning_coffee"] in alt and ENVIRONMENTS["cafe"] in alt


def test_alt_text_uses_free_words_when_the_scene_is_not_a_preset() -> None:
    assert "rooftop party" in build_alt_text(scene="rooftop_party")


def test_alt_text_is_cut_at_a_word_to_at_most_1000_characters() -> None:
    alt = build_alt_text(scene="golden_hour", extra="very long words " * 100)
    assert len(alt) <= MAX_ALT_TEXT_CHARS and alt.endswith("…")
    assert not alt[:-1].endswith(" ")


def test_built_alt_text_passes_the_caption_check() -> None:
    alt = build_alt_text(scene="beach_day", environment="beach", extra="word " * 400)
    assert _caption(alt_text=alt).alt_text == alt
