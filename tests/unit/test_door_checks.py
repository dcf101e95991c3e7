"""Bad input a hostile new user tries, at every door: one ``error:`` line naming the value and
the fix, exit code 2, and every table exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import create_engine, select

from models import Base

Invoke = Callable[..., Result]
LONG = "x" * 2190  # + the longest scene preset ("morning coffee") passes 2,200


def soon() -> str:
    """A local day to come, whatever today is (read when the test runs: the clock may move)."""
    return (date.today() + timedelta(days=3)).isoformat()


def snapshot(tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: a refused command must leave all of them as they were."""
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'ryla.db'}")
    with engine.connect() as conn:
        rows = {
            t.name: sorted(map(tuple, conn.execute(select(t)))) for t in Base.metadata.sorted_tables
        }
    engine.dispose()
    return rows  # type: ignore[return-value]


def one_error_line(result: Result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def ryla(ryla: Invoke) -> Invoke:
    """mia (Berlin) with a character and a calendar posting daily at 09:00."""
    for args in (
        ["influencer", "add", "mia", "--name", "Mia", "--timezone", "Europe/Berlin"],
        ["character", "add", "mia", "Mia"],
        ["calendar", "add", "mia", "main", "--days", "daily", "--times", "09:00"],
    ):
        assert ryla(*args).exit_code == 0
    return ryla


def refused(ryla: Invoke, tmp_path: Path, args: list[str], *needles: str) -> str:
    before = snapshot(tmp_path)
    line = one_error_line(ryla(*args), *needles)
    assert snapshot(tmp_path) == before
    return line


INFLUENCER = ["influencer", "add", "ana", "--name", "Ana", "--timezone"]
CALENDAR = ["calendar", "add", "mia", "extra"]

CASES = [
    # zones, names, handles
    ([*INFLUENCER, "localtime"], ["unknown time zone 'localtime'", "IANA"]),
    ([*INFLUENCER, "Factory"], ["unknown time zone 'Factory'"]),
    ([*INFLUENCER, "posix/Europe/Berlin"], ["unknown time zone 'posix/Europe/Berlin'"]),
    (["influencer", "add", "ana", "--name", "", "--timezone", "UTC"], ["display name is empty"]),
    (["influencer", "add", "ana", "--name", "A" * 101, "--timezone", "UTC"], ["at most 100"]),
    (["influencer", "add", "ana", "--name", "A\nB", "--timezone", "UTC"], ["control character"]),
    (["influencer", "add", "", "--name", "A", "--timezone", "UTC"], ["invalid handle ''"]),
    (["influencer", "add", "mia", "--name", "Mia", "--timezone", "UTC"], ["'mia' already exists"]),
    (["influencer", "add", "MIA", "--name", "Mia", "--timezone", "UTC"], ["'mia' already exists"]),
    (["post", "show", "3000000000"], ["3000000000 is not in the range 1<=x<=2147483647"]),
    (["post", "cancel", "99999999999999999999"], ["is not in the range"]),
    ([*INFLUENCER, "UTC", "--max-posts-per-day", "101"], ["daily cap 101", "1 to 100"]),
    ([*INFLUENCER, "UTC", "--max-posts-per-day", "0"], ["daily cap 0"]),
    ([*INFLUENCER, "UTC", "--caption-template", LONG + "{scene}"], ["at its longest", "2,204"]),
    ([*INFLUENCER, "UTC", "--hashtag", "bad tag!"], ["hashtag 'bad tag!'", "letters, digits"]),
    (["character", "add", "mia", ""], ["character name is empty"]),
    (["character", "add", "mia", "Mia"], ["character 'Mia' already exists"]),
    (["character", "add", "mia", "Zoe", "--hair", "h" * 121], ["hair", "at most 120"]),
    (["character", "add", "mia", "Zoe", "--lora", "/nope/zoe.safetensors"], ["does not exist"]),
    (["character", "add", "mia", "Zoe", "--lora", "/tmp/zoe.ckpt"], ["not a .safetensors"]),
    # calendar names and starts
    (["calendar", "add", "mia", "", "--days", "mon", "--times", "08:00"], ["name is empty"]),
    (["calendar", "add", "mia", "n" * 300, "--days", "mon", "--times", "08:00"], ["at most 100"]),
    (["calendar", "add", "mia", "a\tb", "--days", "mon", "--times", "08:00"], ["control"]),
    ([*CALENDAR, "--rrule", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "--start", "0999-01-01"],
     ["start '0999-01-01'", "5 years"]),
    ([*CALENDAR, "--rrule", "FREQ=HOURLY;BYMINUTE=0", "--start", "1000-01-01"], ["5 years"]),
    ([*CALENDAR, "--rrule", "FREQ=DAILY;BYHOUR=7", "--start", "2026-12-01 07:00+01:00"],
     ["without an offset"]),
    ([*CALENDAR, "--rrule", "FREQ=DAILY;BYHOUR=7;" + "BYMONTH=1," * 60], ["at most 500"]),
    # captions as they will be posted
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--caption-template", LONG + "{scene}",
      "--scene", "morning_coffee"], ["caption template 1", "longest", "2,204 characters"]),
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--caption-template", "{outfit}",
      "--outfit", "o" * 2300], ["outfit", "at most 500"]),
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--caption-template", "x" * 1800 + "{outfit}",
      "--outfit", "jeans", "--outfit", "o" * 450], ["with outfit 'oooo", "limit 2,200"]),
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--caption", "c" * 2201], ["2,200"]),
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--hashtag", "bad tag!"],
     ["hashtag 'bad tag!'"]),
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--hashtag",
      ",".join(f"t{i}" for i in range(31))], ["31 hashtags (limit 30)"]),
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--caption",
      " ".join(f"@u{i}" for i in range(21))], ["21 @mentions (limit 20)"]),
    (["post", "add", "mia", "--at", "+2h", "--caption", "c" * 2201], ["2,200"]),
    (["post", "add", "mia", "--at", "+2h", "--hashtag", "bad tag!"], ["hashtag 'bad tag!'"]),
    (["post", "add", "mia", "--at", "+2h", "--hashtag", ",".join(f"t{i}" for i in range(31))],
     ["31 hashtags (limit 30)"]),
    (["post", "add", "mia", "--at", "+2h", "--caption", " ".join(f"@u{i}" for i in range(21))],
     ["21 @mentions"]),
    (["post", "add", "mia", "--at", "+2h", "--outfit", "o" * 501], ["outfit", "at most 500"]),
    (["post", "add", "mia", "--at", "+2h", "--caption", "a\x1b[31mred\x07"],
     ["control character U+001B", "remove it"]),
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--caption-template", "{name:x>999999999}"],
     ["{name:x>999999999} has a format", "plain {name}"]),
    ([*CALENDAR, "--days", "mon", "--times", "08:00", "--caption-template", "{scene!r}"],
     ["{scene!r} has a format"]),
    # how often
    ([*CALENDAR, "--rrule", "FREQ=HOURLY;BYMINUTE=" + ",".join(map(str, range(60)))],
     ["1 minutes apart", "at most hourly"]),
    ([*CALENDAR, "--days", "mon", "--times", "10:00,10:30"], ["30 minutes apart"]),
    ([*CALENDAR, "--days", "daily", "--times", "23:30,00:10"], ["40 minutes apart"]),
    # one-off times
    (["post", "add", "mia", "--at", "2020-01-01 10:00"], ["2020-01-01 10:00", "in the past"]),
    (["post", "add", "mia", "--at", "+99999999d"], ["'+99999999d' is out of range"]),
    (["post", "add", "mia", "--at", "0001-01-01 00:30"], ["'0001-01-01 00:30' is out of range"]),
    (["post", "add", "mia", "--at", "+800d"], ["more than 731 days ahead"]),
    (["post", "add", "mia", "--at", "+2h", "--lead-minutes", "-1"], ["lead time -1 min"]),
    # Click's own usage errors
    (["influencer", "add", "ana", "--timezone", "UTC"], ["missing option '--name'", "--help"]),
    (["post", "add", "mia", "--at", "+2h", "--images", "many"], ["'many' is not a valid integer"]),
    (["post", "add", "mia", "--at", "+2h", "--format", ""], ["no format given", "feed_portrait"]),
    (["calendar", "frobnicate"], ["no such command 'frobnicate'"]),
    (["--no-such-flag", "status"], ["no such option"]),
    (["target", "add", "mia", "t", "--kind", "carrier-pigeon"], ["'carrier-pigeon' is not one of"]),
    (["calendar", "delete", "mia", "main"], ["--yes", "no terminal"]),
    (["target", "add", "mia", "", "--kind", "outbox"], ["target name is empty"]),
    (["target", "add", "mia", "t" * 101, "--kind", "outbox"], ["target name", "at most 100"]),
    (["target", "add", "mia", "ig", "--kind", "instagram", "--ig-user-id", "1"],
     ["no access token", "RYLA_TARGET_ACCESS_TOKEN"]),
    (["target", "add", "mia", "box", "--kind", "outbox", "--path", "/dev/null/box"],
     ["--path '/dev/null/box': /dev/null is not a folder"]),
]  # fmt: skip


@pytest.mark.parametrize(("args", "needles"), CASES, ids=lambda v: " ".join(v)[:50])
def test_bad_input_is_one_line_exit_2_and_no_table_changes(
    ryla: Invoke, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    refused(ryla, tmp_path, args, *needles)


def test_a_lora_that_is_only_named_safetensors_is_refused(ryla: Invoke, tmp_path: Path) -> None:
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"PK\x03\x04 a pickle in a zip")
    refused(ryla, tmp_path, ["character", "add", "mia", "Zoe", "--lora", str(fake)], "not a valid")


def test_a_real_safetensors_lora_is_stored_by_its_absolute_path(
    ryla: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = b'{"__metadata__":{}}'
    (tmp_path / "zoe.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    monkeypatch.chdir(tmp_path)
    assert ryla("character", "add", "mia", "Zoe", "--lora", "zoe.safetensors").exit_code == 0
    (row,) = snapshot(tmp_path)["characters"][1:]
    assert str(tmp_path / "zoe.safetensors") in row


def test_the_same_slot_twice_is_refused_whatever_form_the_rule_takes(
    ryla: Invoke, tmp_path: Path
) -> None:
    rrule = [*CALENDAR[:3], "other", "--rrule", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"]
    refused(ryla, tmp_path, rrule, "adds no slot", "rule 1 of calendar 'main'")
    refused(ryla, tmp_path, [*CALENDAR, "--days", "mon,tue", "--times", "09:00"], "adds no slot")


def test_importing_the_same_file_again_is_refused_row_by_row(ryla: Invoke, tmp_path: Path) -> None:
    SOON = soon()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "rules:\n  - {handle: mia, calendar: evenings, rrule: 'FREQ=DAILY;BYHOUR=19;BYMINUTE=0'}\n"
        f"posts:\n  - {{handle: mia, at: '{SOON} 18:00', caption: soon}}\n",
        encoding="utf-8",
    )
    assert ryla("calendar", "import", str(plan)).exit_code == 0
    before = snapshot(tmp_path)
    again = ryla("calendar", "import", str(plan))
    assert again.exit_code == 2
    assert "row 1 (line 2, rule): calendar 'evenings' already has this schedule" in again.output
    assert f"row 2 (line 4, post): 'mia' already has post 1 at {SOON} 18:00" in again.output
    assert snapshot(tmp_path) == before


def test_a_post_at_an_instant_already_taken_is_refused(ryla: Invoke, tmp_path: Path) -> None:
    SOON = soon()
    assert ryla("post", "add", "mia", "--at", f"{SOON} 18:00").exit_code == 0
    again = ["post", "add", "mia", "--at", f"{SOON} 18:00"]
    taken = f"'mia' already has post 1 at {SOON} 18:00 Europe/Berlin"
    refused(ryla, tmp_path, again, taken, "ryla post cancel 1")


def test_a_daily_cap_is_set_per_influencer_and_plans_must_fit_under_it(
    ryla: Invoke, tmp_path: Path
) -> None:
    assert (
        ryla("calendar", "add", "mia", "more", "--days", "daily", "--times", "12:00").exit_code == 0
    )
    refused(ryla, tmp_path, ["influencer", "edit", "mia", "--max-posts-per-day", "1"],
            "would post 2 times", "daily cap of 1")  # fmt: skip
    refused(ryla, tmp_path, ["influencer", "edit", "mia", "--max-posts-per-day", "lots"], "'lots'")
    raised = ryla("influencer", "edit", "mia", "--max-posts-per-day", "48")
    assert raised.output.strip() == "influencer mia: at most 48 posts a day"
    hourly = ["calendar", "add", "mia", "hourly", "--rrule", "FREQ=HOURLY;BYMINUTE=30"]
    assert ryla(*hourly).exit_code == 0  # 26 a day: over the setting's 25, under mia's 48
    refused(ryla, tmp_path, ["influencer", "edit", "mia", "--max-posts-per-day", "default"],
            "26 times", "daily cap of 25")  # fmt: skip


def test_a_long_list_of_row_errors_is_summarised(ryla: Invoke, tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    rows = "".join(f"post,nobody,2026-12-01 10:{i % 60:02d}\n" for i in range(2000))
    plan.write_text("kind,handle,at\n" + rows, encoding="utf-8")
    before = snapshot(tmp_path)
    result = ryla("calendar", "import", str(plan))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 22
    assert lines[0] == "error: 2,000 problem(s) in 2,000 row(s) of plan.csv; nothing was imported:"
    assert lines[-1] == "  … and 1,980 more problem(s)"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        (
            "bomb.yaml",
            'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
            "posts: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
            "line 2, column 8: not valid YAML: aliases (*name) are not allowed",
        ),
        ("deep.yaml", "posts: " + "[" * 5000 + "]" * 5000, "nested more than 10 levels"),
        ("nul.csv", "kind,handle,at\npost,mia,\0\n", "malformed time '\\x00'"),
        ("wide.csv", "kind,handle,caption\npost,mia," + "c" * 200_000 + "\n", "not valid CSV"),
        ("big.csv", "kind,handle,caption\n" + ("post,mia,x\n" * 1_000_000), "at most 10,485,760"),
    ],
)
def test_a_hostile_import_file_is_refused_at_once(
    ryla: Invoke, tmp_path: Path, name: str, content: str, needle: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    before = snapshot(tmp_path)
    result = ryla("calendar", "import", str(path))
    assert result.exit_code == 2 and needle in result.output
    assert len(result.output.strip().splitlines()) <= 2
    assert snapshot(tmp_path) == before


def test_a_story_takes_its_caption_with_a_note_that_instagram_shows_none(ryla: Invoke) -> None:
    at = f"{soon()} 10:00"
    story = ryla("post", "add", "mia", "--at", at, "--format", "story", "--caption", "hi")
    assert story.exit_code == 0, story.output
    assert story.stdout.startswith("post 1 planned")
    assert story.stderr.startswith("note: Instagram shows no caption on a story")
    feed = ryla("post", "add", "mia", "--at", f"{soon()} 12:00", "--caption", "hi")
    assert feed.exit_code == 0 and feed.stderr == ""


def test_a_target_token_can_come_on_standard_input(ryla: Invoke, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from admin.cli import cli

    args = ["target", "add", "mia", "ig", "--kind", "instagram", "--ig-user-id", "1784"]
    result = CliRunner().invoke(cli, args, input="IGQVJpiped-token\n")
    assert result.exit_code == 0, result.output
    assert "IGQVJpiped" not in result.output
    for stored in (tmp_path / "data").rglob("*"):
        assert not stored.is_file() or b"IGQVJpiped" not in stored.read_bytes()
    hook = ["target", "add", "mia", "hook", "--kind", "webhook"]
    piped = CliRunner().invoke(
        cli, hook, input="https://hooks.example.com/x\nsigning-key-0123456789\n"
    )
    assert piped.exit_code == 0, piped.output


def test_the_import_refuses_what_the_commands_refuse_row_by_row(
    ryla: Invoke, tmp_path: Path
) -> None:
    SOON = soon()
    minutes = ",".join(map(str, range(60)))
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "posts:\n"
        f"  - {{handle: mia, at: '{SOON} 10:00', caption: {'c' * 2201}}}\n"
        f"  - {{handle: mia, at: '{SOON} 11:00', hashtags: ['bad tag!']}}\n"
        "  - {handle: mia, at: '+99999999d'}\n"
        "  - {handle: mia, at: '0001-01-01 00:30'}\n"
        "  - {handle: mia, at: '2020-01-01 10:00'}\n"
        "rules:\n"
        f"  - {{handle: mia, calendar: spam, rrule: 'FREQ=HOURLY;BYMINUTE={minutes}'}}\n"
        "  - {handle: mia, calendar: '  ', days: mon, times: '08:00'}\n"
        f"  - {{handle: mia, calendar: tags, days: mon, times: '08:00', hashtags: [{minutes}]}}\n",
        encoding="utf-8",
    )
    before = snapshot(tmp_path)
    result = ryla("calendar", "import", str(plan))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2
    assert lines[0] == "error: 8 problem(s) in 8 row(s) of plan.yaml; nothing was imported:"
    for row, needle in enumerate(
        [
            "over Instagram's 2,200 characters",
            "hashtag 'bad tag!'",
            "'+99999999d' is out of range",
            "'0001-01-01 00:30' is out of range",
            "is in the past",
            "1 minutes apart",
            "calendar name is empty",
            "60 hashtags (limit 30)",
        ],
        start=1,
    ):
        assert lines[row].startswith(f"  row {row} ") and needle in lines[row], lines[row]
    assert snapshot(tmp_path) == before
