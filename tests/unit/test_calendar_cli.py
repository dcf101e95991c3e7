"""``ryla calendar add|edit|pause|resume|delete|list|import``, ``ryla influencer pause|resume``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, select

from admin.cli import cli
from models import ContentCalendar, Post, SlotRule

Invoke = Callable[..., Result]
A_YEAR_AGO = (date.today() - timedelta(days=365)).isoformat()  # relative: any day works

NEW_COMMANDS = [
    ["calendar", "add"],
    ["calendar", "edit"],
    ["calendar", "pause"],
    ["calendar", "resume"],
    ["calendar", "delete"],
    ["calendar", "list"],
    ["calendar", "import"],
    ["influencer", "pause"],
    ["influencer", "resume"],
]


@pytest.fixture
def ryla(ryla: Invoke) -> Invoke:
    """The CLI with one influencer, character and daily calendar already added."""
    invoke = ryla
    for args in (
        ["influencer", "add", "mia", "--name", "Mia", "--timezone", "Europe/Berlin"],
        ["character", "add", "mia", "Mia"],
        ["calendar", "add", "mia", "main", "--days", "daily", "--times", "09:00"],
    ):
        assert invoke(*args).exit_code == 0
    return invoke


def counts(tmp_path: Path) -> tuple[int, ...]:
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'ryla.db'}")
    with engine.connect() as conn:
        result = tuple(
            conn.scalar(select(func.count()).select_from(m))
            for m in (ContentCalendar, SlotRule, Post)
        )
    engine.dispose()
    return result  # type: ignore[return-value]


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("command", NEW_COMMANDS, ids=" ".join)
def test_every_new_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_a_calendar_is_edited_paused_resumed_listed_and_deleted(ryla: Invoke) -> None:
    edited = ryla("calendar", "edit", "mia", "main", "--rrule", "FREQ=WEEKLY;BYDAY=MO;BYHOUR=8")
    assert edited.exit_code == 0 and edited.output.startswith("calendar main changed")
    listing = ryla("calendar", "list", "mia")
    assert "mia/main  active" in listing.output
    assert "FREQ=WEEKLY;BYDAY=MO;BYHOUR=8 from " in listing.output
    assert ryla("calendar", "pause", "mia", "main").output.startswith("calendar main paused")
    assert "paused" in ryla("calendar", "list").output
    assert ryla("calendar", "resume", "mia", "main").output.startswith("calendar main resumed")
    deleted = ryla("calendar", "delete", "mia", "main", "--yes")
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    assert ryla("calendar", "list").output.startswith("no calendars yet")


def test_an_influencer_is_paused_and_resumed(ryla: Invoke) -> None:
    assert ryla("influencer", "pause", "mia").output.startswith("influencer mia paused")
    assert ryla("influencer", "pause", "mia").output.strip() == "influencer mia was already paused"
    assert "held (influencer paused)" in ryla("calendar", "list").output
    assert ryla("influencer", "resume", "mia").output.startswith("influencer mia resumed")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rrule", "FREQ=DAILY;BYDAY=XX"], "malformed rrule 'FREQ=DAILY;BYDAY=XX'"),
        (["--rrule", "FREQ=DAILY;COUNT=1", "--start", A_YEAR_AGO], "has no occurrence"),
        (["--times", "24:00"], "malformed time '24:00'"),
        (["--scene", ""], "empty rotation: scenes"),
        (["--horizon-days", "400"], "horizon 400 days"),
        (["--rule", "9", "--times", "10:00"], "has no rule 9"),
    ],
)
def test_a_bad_edit_is_one_line_and_writes_nothing(
    ryla: Invoke, tmp_path: Path, args: list[str], needle: str
) -> None:
    assert needle in one_error_line(ryla("calendar", "edit", "mia", "main", *args))
    assert counts(tmp_path) == (1, 1, 0)


def test_unknown_calendars_and_influencers_are_named(ryla: Invoke) -> None:
    assert "unknown calendar 'nope'" in one_error_line(ryla("calendar", "pause", "mia", "nope"))
    assert "unknown influencer 'bob'" in one_error_line(ryla("influencer", "resume", "bob"))


def test_an_import_lists_every_bad_row_and_writes_nothing(ryla: Invoke, tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_text(
        "kind,handle,calendar,days,times,scenes\n"
        "rule,mia,extra,mon,08:00,travel\n"
        "rule,mia,extra,tue,26:00,travel\n"
        "rule,mia,extra,wed,10:00,\n"
        "rule,mia,extra,thu,10:00,moonwalk\n",
        encoding="utf-8",
    )
    result = ryla("calendar", "import", str(plan))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0] == "error: 2 problem(s) in 4 row(s) of plan.csv; nothing was imported:"
    assert lines[1].startswith("  row 2 (line 3, rule): malformed time '26:00'")
    assert lines[2].startswith("  row 4 (line 5, rule): unknown scene 'moonwalk'")
    assert counts(tmp_path) == (1, 1, 0)


def test_an_import_of_good_rows_reports_what_it_added(ryla: Invoke, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "rules:\n  - {handle: mia, calendar: extra, rrule: 'FREQ=DAILY;BYHOUR=7'}\n"
        "posts:\n  - {handle: mia, at: '+2h', caption: soon}\n",
        encoding="utf-8",
    )
    result = ryla("calendar", "import", str(plan))
    assert result.output.strip() == "imported 1 post(s) and 1 rule(s) (1 calendar(s) created)"
    assert counts(tmp_path) == (2, 2, 1)


def test_add_import_and_edit_share_one_validation_path(ryla: Invoke, tmp_path: Path) -> None:
    """The same bad rotation is refused the same way by every door, and nothing is written."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "rules:\n  - {handle: mia, calendar: extra, days: mon, times: '09:00',"
        " scenes: [travel, travel]}\n",
        encoding="utf-8",
    )
    doors = {
        "add": ryla(
            "calendar", "add", "mia", "extra", "--days", "mon", "--times", "09:00",
            "--scene", "travel,travel",
        ),
        "edit": ryla("calendar", "edit", "mia", "main", "--scene", "travel,travel"),
        "import": ryla("calendar", "import", str(plan)),
    }  # fmt: skip
    for door, result in doors.items():
        assert result.exit_code == 2, door
        assert "scenes lists 'travel' twice" in result.output, door
    assert counts(tmp_path) == (1, 1, 0)


def test_calendar_add_takes_an_rrule_a_start_and_a_horizon(ryla: Invoke, tmp_path: Path) -> None:
    result = ryla(
        "calendar", "add", "mia", "evenings", "--rrule", "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=19",
        "--start", "2026-12-01", "--horizon-days", "30", "--caption-template", "{day} vibes",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=19 from 2026-12-01T00:00")
    assert "evenings  active" in ryla("calendar", "list", "mia").output
    assert counts(tmp_path) == (2, 2, 0)


def test_calendar_add_to_an_existing_calendar_adds_a_rule_unless_it_is_a_copy(
    ryla: Invoke, tmp_path: Path
) -> None:
    added = ryla("calendar", "add", "mia", "main", "--days", "sat", "--times", "11:00")
    assert added.output.startswith("calendar main: rule added")
    copy = ryla("calendar", "add", "mia", "main", "--days", "daily", "--times", "09:00")
    assert "already has this schedule (rule 1)" in one_error_line(copy)
    assert counts(tmp_path) == (1, 2, 0)
