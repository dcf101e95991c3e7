"""Importing posts and rules from CSV or YAML: every row checked, errors by row, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ContentCalendar, Post, SlotRule
from pipeline.errors import InputError
from pipeline.planning.imports import ImportRejected, import_rows, read_rows
from pipeline.settings import Settings
from tests.conftest import NOW

CSV_OK = """kind,handle,calendar,days,times,rrule,start,scenes,captions,at,caption,lead_minutes
rule,mia,main,"mon,wed",09:00|18:30,,,beach_day|travel,"Hello {day}, from {scene}",,,45
rule,mia,main,,,FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=12,2026-12-01,,,,,
post,mia,,,,,,,,2026-12-24 18:00,Merry!,
"""

YAML_OK = """
rules:
  - handle: mia
    calendar: weekend
    days: sat,sun
    times: [10:30]          # stays "10:30", not YAML 1.1's base-60 number 630
    scenes: [cozy_home, morning_coffee]
    outfits: ["knit sweater, jeans", pyjamas]
    captions:
      - "Slow {day} at home"
posts:
  - handle: mia
    at: "2026-12-31 23:30"
    scene: night_out
    hashtags: newyear, party
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _import(session: Session, settings: Settings, path: Path) -> object:
    return import_rows(session, read_rows(path), source=path.name, settings=settings, now=NOW)


def _counts(session: Session) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        session.scalar(select(func.count()).select_from(m))
        for m in (ContentCalendar, SlotRule, Post)
    )


def test_a_csv_of_rules_and_posts_is_imported(
    session: Session, settings: Settings, influencer_id: int, tmp_path: Path
) -> None:
    report = _import(session, settings, _write(tmp_path, "plan.csv", CSV_OK))
    assert (report.posts, report.rules, report.calendars) == (1, 2, 1)  # type: ignore[attr-defined]
    calendar = session.scalars(select(ContentCalendar)).one()
    assert calendar.lead_minutes == 45
    first, second = calendar.rules
    assert (first.days_of_week, first.times, first.scenes) == (
        [1, 3],
        ["09:00", "18:30"],
        ["beach_day", "travel"],
    )
    assert first.caption_templates == ["Hello {day}, from {scene}"]
    assert (second.rrule, second.dtstart) == (
        "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=12",
        "2026-12-01T00:00",
    )
    post = session.scalars(select(Post)).one()
    assert post.local_publish_time == "2026-12-24 18:00 Europe/Berlin"


def test_yaml_times_stay_wall_times(
    session: Session, settings: Settings, influencer_id: int, tmp_path: Path
) -> None:
    _import(session, settings, _write(tmp_path, "plan.yaml", YAML_OK))
    rule = session.scalars(select(SlotRule)).one()
    assert rule.times == ["10:30"]
    assert rule.outfits == ["knit sweater, jeans", "pyjamas"]
    assert session.scalars(select(Post.hashtags)).one() == ["newyear", "party"]


CSV_BAD = """kind,handle,calendar,days,times,rrule,scenes,at,lead_minutes
rule,mia,main,mon,09:00,,travel,,
rule,mia,main,,,FREQ=DAILY;BYHOUR=99,,,
post,mia,,,,,,yesterday-ish,
rule,nobody,x,mon,09:00,,,,
rule,mia,other,mon,25:00,,,,
post,mia,,,,,,2026-12-24 18:00,abc
rule,mia,main,mon,09:00,,,,
"""


def test_every_bad_row_is_listed_and_nothing_is_imported(
    session: Session, settings: Settings, influencer_id: int, tmp_path: Path
) -> None:
    with pytest.raises(ImportRejected) as caught:
        _import(session, settings, _write(tmp_path, "plan.csv", CSV_BAD))
    session.rollback()  # what the CLI's session scope does with the error
    assert caught.value.errors == [
        "row 2 (line 3, rule): malformed rrule 'FREQ=DAILY;BYHOUR=99': hour must be in 0..23",
        "row 3 (line 4, post): malformed time 'yesterday-ish': use 'YYYY-MM-DD HH:MM' (local),"
        " 'now' or '+30m'",
        "row 4 (line 5, rule): unknown influencer 'nobody': list them with `ryla influencer list`"
        " or add one with `ryla influencer add`",
        "row 5 (line 6, rule): malformed time '25:00': use 24-hour HH:MM, e.g. 09:00 or 18:30",
        "row 6 (line 7, post): lead_minutes 'abc' is not a whole number",
        "row 7 (line 8, rule): calendar 'main' already has this schedule (rule 1): change that"
        " rule with `ryla calendar edit` instead",
    ]
    assert "nothing was imported" in str(caught.value)
    assert _counts(session) == (0, 0, 0)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("plan.csv", "kind,handle,scnes\n", "unknown column 'scnes'"),
        ("plan.csv", "handle,days\n", "no 'kind' column"),
        ("plan.csv", "kind,handle\n", "has no rows"),
        ("plan.yaml", "rules: [\n", "not valid YAML"),
        ("plan.yaml", "- a\n- b\n", "must be a mapping"),
        ("plan.yaml", "events: []\n", "'events' is not a list of rules or posts"),
        ("plan.txt", "x", "use a .csv, .yaml or .yml file"),
    ],
)
def test_an_unreadable_file_is_one_clear_error(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        read_rows(_write(tmp_path, name, text))


def test_a_row_naming_a_field_of_the_other_kind_is_refused(
    session: Session, settings: Settings, influencer_id: int, tmp_path: Path
) -> None:
    text = "posts:\n  - {handle: mia, at: '2026-12-24 18:00', days: mon}\n"
    with pytest.raises(ImportRejected, match=r"row 1 .*field 'days' does not apply here"):
        _import(session, settings, _write(tmp_path, "plan.yml", text))


def test_a_one_off_post_in_the_past_is_refused(
    session: Session, settings: Settings, influencer_id: int, tmp_path: Path
) -> None:
    text = "kind,handle,at\npost,mia,2026-01-01 09:00\n"
    with pytest.raises(ImportRejected, match="2026-01-01 09:00 Europe/Berlin is in the past"):
        _import(session, settings, _write(tmp_path, "plan.csv", text))
