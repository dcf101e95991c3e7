"""Rotation: deterministic picks, no repeated combination within a window, caption templates."""

from __future__ import annotations

from sqlalchemy.orm import Session

from models import Post
from pipeline.planning.expand import expand_due_calendars
from pipeline.planning.rotation import combinations, pick_caption, rotate
from pipeline.settings import Settings
from tests.calendar_kit import make_calendar, plan
from tests.conftest import NOW

SCENES = ["beach_day", "workout", "travel"]
ENVIRONMENTS = ["beach", "urban"]
OUTFITS = ["red dress", "denim jacket"]


def test_no_combination_repeats_within_the_window() -> None:
    window = combinations(SCENES, ENVIRONMENTS, OUTFITS)
    for start in (0, 5, 1234):
        picks = {rotate(n, SCENES, ENVIRONMENTS, OUTFITS) for n in range(start, start + window)}
        assert len(picks) == window == 12


def test_the_rotation_repeats_exactly_after_the_window() -> None:
    assert all(
        rotate(n, SCENES, ENVIRONMENTS, OUTFITS) == rotate(n + 12, SCENES, ENVIRONMENTS, OUTFITS)
        for n in range(40)
    )


def test_environment_and_outfit_change_with_the_scene_not_once_a_lap() -> None:
    picks = [rotate(n, SCENES, ENVIRONMENTS, OUTFITS) for n in range(3)]
    assert len({p.environment for p in picks}) == 2
    assert len({p.outfit for p in picks}) == 2


def test_empty_lists_rotate_nothing() -> None:
    pick = rotate(7, [], [], ["one outfit"])
    assert (pick.scene, pick.environment, pick.outfit) == ("", "", "one outfit")
    assert combinations([], [], []) == 1
    assert pick_caption(3, []) is None
    assert pick_caption(3, ["a", "b"]) == "b"


def test_days_without_posts_do_not_shorten_the_window(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    make_calendar(
        session,
        settings,
        days="mon,wed,fri",
        times="09:00",
        scenes=SCENES,
        environments=ENVIRONMENTS,
    )
    expand_due_calendars(session, now=NOW, horizon_days=14)
    rows = plan(session, Post.scene, Post.environment)
    assert len(rows) == 6 and len(set(rows)) == 6
