"""Properties of the door's checks, over many generated inputs (Hypothesis): rules, times, names,
captions. Each either accepts with a value that holds, or says one line; nothing else escapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import Influencer, Post, SlotRule
from pipeline.captions import build_caption, caption_variables
from pipeline.errors import CaptionError, InputError, ScheduleError
from pipeline.generators.prompts import SCENES
from pipeline.planning.caption_limits import check_rule_captions
from pipeline.planning.frequency import MIN_GAP, check_rule_frequency
from pipeline.planning.times import parse_days, parse_rrule, parse_times, parse_when
from pipeline.planning.walls import rrule_walls
from pipeline.validation import check_name

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def rrules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(["HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}", f"INTERVAL={draw(st.integers(1, 3))}"]
    if freq != "HOURLY":
        hours = draw(st.lists(st.integers(0, 23), min_size=1, max_size=3, unique=True))
        parts.append("BYHOUR=" + ",".join(map(str, hours)))
    parts.append(f"BYMINUTE={draw(st.integers(0, 59))}")
    days = draw(st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), unique=True))
    if days and freq != "DAILY":
        parts.append("BYDAY=" + ",".join(days))
        if freq in ("WEEKLY", "MONTHLY", "YEARLY") and draw(st.booleans()):
            parts.append(f"BYSETPOS={draw(st.sampled_from([1, 2, -1]))}")
    if freq == "MONTHLY" and not days:
        parts.append(f"BYMONTHDAY={draw(st.sampled_from([1, 15, 28, -1]))}")
    if draw(st.booleans()):
        parts.append(f"COUNT={draw(st.integers(1, 400))}")
    return ";".join(parts)


@FAST
@given(text=rrules(), start_days=st.integers(0, 700), start_hour=st.integers(0, 23), k=st.data())
def test_counting_from_an_anchor_gives_the_same_slots_and_ordinals(
    text: str, start_days: int, start_hour: int, k: st.DataObject
) -> None:
    start = datetime(2024, 1, 1, start_hour) + timedelta(days=start_days)
    walls = []
    for n, wall in enumerate(parse_rrule(text, start, BERLIN)):
        walls.append((wall.replace(tzinfo=None), n))
        if n >= 300:
            break
    if not walls:
        return
    index = k.draw(st.integers(0, len(walls) - 1))
    anchor, anchor_n = walls[index]
    # The start is unreadable where an anchor applies: counting from it would fail loudly.
    weekly_setpos = "WEEKLY" in text and "BYSETPOS" in text
    dtstart = start.isoformat(timespec="minutes") if weekly_setpos else "never read"
    rule = SlotRule(rrule=text, dtstart=dtstart)
    rule.anchor_at, rule.anchor_n = anchor.isoformat(timespec="minutes"), anchor_n
    # A window from the anchor's own midnight would need the walls before it: from the next day.
    first, last = anchor.date() + timedelta(days=1), walls[-1][0].date()
    expected = [(w, n) for w, n in walls if first <= w.date() <= last]
    assert list(rrule_walls(rule, BERLIN, first, last))[: len(expected)] == expected


TIMES = st.lists(
    st.tuples(st.integers(0, 23), st.integers(0, 59)), min_size=1, max_size=6, unique=True
)


@FAST
@given(times=TIMES, days=st.lists(st.integers(1, 7), min_size=1, max_size=7, unique=True))
def test_a_rule_is_refused_exactly_when_two_slots_come_within_an_hour(
    times: list[tuple[int, int]], days: list[int]
) -> None:
    walls = sorted(
        datetime(2026, 11, 30, h, m) + timedelta(days=d)  # 2026-11-30 is a Monday
        for d in range(21)
        if (d % 7) + 1 in days
        for h, m in times
    )
    too_close = any(b - a < MIN_GAP for a, b in pairwise(walls))
    rule = SlotRule(days_of_week=sorted(days), times=[f"{h:02d}:{m:02d}" for h, m in times])
    influencer = Influencer(handle="mia", timezone="Europe/Berlin", max_posts_per_day=100)
    session = _NoRows()
    try:
        check_rule_frequency(
            session,  # type: ignore[arg-type]
            influencer=influencer, rule=rule, replacing=None, settings=_CAP, now=NOW,
        )  # fmt: skip
    except InputError as exc:
        assert too_close and "at most hourly" in str(exc) and "\n" not in str(exc)
    else:
        assert not too_close


class _NoRows:
    """A session with no rows: the rule is checked on its own."""

    def execute(self, *_: object) -> list[object]:
        return []

    def scalars(self, *_: object) -> list[object]:
        return []


class _Cap:
    max_posts_per_day = 100


_CAP = _Cap()


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
def test_any_time_text_is_an_instant_or_one_schedule_error(text: str) -> None:
    try:
        when = parse_when(text, BERLIN, NOW)
    except ScheduleError as exc:
        assert "\n" not in str(exc)
    else:
        assert when.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
def test_any_days_or_times_text_parses_or_is_one_schedule_error(text: str) -> None:
    for parse in (parse_days, parse_times):
        try:
            parsed = parse(text)
        except ScheduleError as exc:
            assert "\n" not in str(exc)
        else:
            assert parsed == sorted(set(parsed))  # type: ignore[type-var]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=130))
def test_a_name_is_accepted_clean_or_refused_in_one_line(text: str) -> None:
    try:
        name = check_name("calendar name", text, field="calendar_name")
    except InputError as exc:
        assert exc.field == "calendar_name" and "\n" not in str(exc)
    else:
        assert name == name.strip() and 0 < len(name) <= 100
        assert not any(ord(c) < 32 or ord(c) == 127 for c in name)


TEMPLATE_PART = st.one_of(
    st.text(alphabet="ab #@_", max_size=600),
    st.sampled_from(["{scene}", "{outfit}", "{day}", "{date}", "{time}", "{environment}"]),
)
INSTANTS = [NOW + timedelta(days=d, hours=d % 24) for d in range(0, 366, 5)]


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(TEMPLATE_PART, min_size=1, max_size=6),
    scenes=st.lists(st.sampled_from(list(SCENES)), min_size=1, max_size=3, unique=True),
    outfits=st.lists(st.text(alphabet="xy #@", min_size=1, max_size=400), max_size=3, unique=True),
    tags=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), max_size=34),
)
def test_a_rule_the_door_accepts_never_overflows_a_caption_later(
    parts: list[str], scenes: list[str], outfits: list[str], tags: list[str]
) -> None:
    """No false accept: every caption the rule really produces stays within the limits."""
    template = "".join(parts)
    influencer = Influencer(
        handle="mia", display_name="Mia", timezone="Europe/Berlin", persona="", voice="",
        caption_template="{text}", default_hashtags=["ryla"],
    )  # fmt: skip
    try:
        check_rule_captions(
            influencer=influencer, caption_text="", templates=[template], scenes=scenes,
            environments=[], outfits=outfits, hashtags=tags,
        )  # fmt: skip
    except InputError:
        return
    for at in INSTANTS:
        for scene in scenes:
            for outfit in outfits or [""]:
                post = Post(publish_at=at, scene=scene, environment="", outfit=outfit)
                variables = caption_variables(influencer=influencer, post=post)
                try:
                    text = build_caption(
                        template=template, text="", variables=variables,
                        default_hashtags=(), post_hashtags=(),
                    ).text  # fmt: skip
                    build_caption(
                        template="{text}", text=text, variables=variables,
                        default_hashtags=["ryla"], post_hashtags=tags,
                    )  # fmt: skip
                except CaptionError as exc:  # pragma: no cover - the failure is the finding
                    pytest.fail(f"accepted, then {exc} at {at} with {scene!r}, {outfit!r}")
