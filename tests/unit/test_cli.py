"""The ``ryla`` command line: every command has help; bad input is one line, exit 2, no writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, select

from admin.cli import cli
from models import Character, ContentCalendar, Influencer, Post

Invoke = Callable[..., Result]


def counts(tmp_path: Path) -> tuple[int, ...]:
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'ryla.db'}")
    with engine.connect() as conn:
        result = tuple(
            conn.scalar(select(func.count()).select_from(m))
            for m in (Influencer, Character, ContentCalendar, Post)
        )
    engine.dispose()
    return result  # type: ignore[return-value]


def add_mia(ryla: Invoke) -> None:
    assert (
        ryla("influencer", "add", "mia", "--name", "Mia", "--timezone", "Europe/Berlin").exit_code
        == 0
    )
    assert ryla("character", "add", "mia", "Mia", "--identity", "a woman").exit_code == 0


COMMANDS = [
    [],
    ["init"],
    ["influencer", "add"],
    ["character", "add"],
    ["calendar", "add"],
    ["post", "add"],
    ["post", "generate"],
    ["post", "render"],
    ["post", "publish"],
    ["post", "approve"],
    ["post", "show"],
    ["status"],
    ["notify", "add"],
    ["notify", "list"],
    ["notify", "test"],
    ["notify", "remove"],
    ["workers"],
    ["worker"],
    ["beat"],
    ["run"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ryla")
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["influencer", "add", "ana", "--name", "Ana", "--timezone", "Mars/Olympus"],
            ["unknown time zone 'Mars/Olympus'", "IANA"],
        ),
        (
            ["influencer", "add", "bad handle!", "--name", "X", "--timezone", "UTC"],
            ["invalid handle 'bad handle!'"],
        ),
    ],
)
def test_bad_influencer_input_writes_nothing(
    ryla: Invoke, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    assert_one_line_error(ryla(*args), *needles)
    assert counts(tmp_path) == (0, 0, 0, 0)


def test_a_duplicate_handle_is_refused(ryla: Invoke, tmp_path: Path) -> None:
    add_mia(ryla)
    result = ryla("influencer", "add", "mia", "--name", "Other", "--timezone", "UTC")
    assert_one_line_error(result, "influencer 'mia' already exists")
    assert counts(tmp_path) == (1, 1, 0, 0)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["calendar", "add", "mia", "main", "--days", "mon", "--times", "25:00"],
            ["malformed time '25:00'", "HH:MM"],
        ),
        (
            ["calendar", "add", "mia", "main", "--days", "someday", "--times", "09:00"],
            ["unknown day 'someday'"],
        ),
        (
            ["calendar", "add", "ghost", "main", "--days", "mon", "--times", "09:00"],
            ["unknown influencer 'ghost'"],
        ),
        (
            [
                "calendar",
                "add",
                "mia",
                "main",
                "--days",
                "mon",
                "--times",
                "09:00",
                "--scene",
                "moon",
            ],
            ["unknown scene 'moon'"],
        ),
        (["post", "add", "mia", "--at", "next tuesday"], ["malformed time 'next tuesday'"]),
        (["post", "add", "ghost", "--at", "now"], ["unknown influencer 'ghost'"]),
        (
            ["post", "add", "mia", "--at", "now", "--format", "reel_8k"],
            ["unknown format 'reel_8k'"],
        ),
        (
            ["character", "add", "mia", "Zoe", "--lora", "/tmp/zoe.ckpt"],
            ["not a .safetensors file"],
        ),
        (["post", "generate", "999"], ["unknown post 999"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(
    ryla: Invoke, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    add_mia(ryla)
    assert_one_line_error(ryla(*args), *needles)
    assert counts(tmp_path) == (1, 1, 0, 0)


def test_a_bad_setting_is_named(ryla: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RYLA_GENERATOR", "dall-e")
    assert_one_line_error(ryla("status"), "RYLA_GENERATOR")


def test_a_step_that_does_not_apply_says_which_states_it_needs(ryla: Invoke) -> None:
    add_mia(ryla)
    assert ryla("post", "add", "mia", "--at", "+2h").exit_code == 0
    assert_one_line_error(ryla("post", "publish", "1"), "post 1 is planned", "ready")


def test_status_shows_posts_by_state(ryla: Invoke) -> None:
    add_mia(ryla)
    for when in ("+1h", "+2h"):
        assert ryla("post", "add", "mia", "--at", when, "--scene", "travel").exit_code == 0
    out = ryla("status").output
    table = out[out.index("influencer") :].splitlines()
    assert "planned" in table[0] and table[1].startswith("mia") and "travel" in out


def test_calendar_add_reports_its_rule(ryla: Invoke) -> None:
    add_mia(ryla)
    result = ryla(
        "calendar",
        "add",
        "mia",
        "main",
        "--days",
        "weekdays",
        "--times",
        "18:30,09:00",
        "--scene",
        "travel,workout",
        "--environment",
        "urban",
    )
    assert result.exit_code == 0
    assert "rule 1 mon,tue,wed,thu,fri 09:00,18:30" in result.output


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--ig-user-id", "mia"], "must be the numeric Instagram user id"),
        (["--ig-user-id", "1784", "--base-url", "http://graph.example.com"], "must use https"),
    ],
)
def test_a_bad_instagram_target_is_refused_and_its_token_never_echoed(
    ryla: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], needle: str
) -> None:
    add_mia(ryla)
    monkeypatch.setenv("RYLA_TARGET_ACCESS_TOKEN", "IGQVJsecret-token-value")
    result = ryla("target", "add", "mia", "mia-ig", "--kind", "instagram", *extra)
    assert_one_line_error(result, needle)
    assert "IGQVJsecret" not in result.output


def test_an_instagram_target_stores_its_token_encrypted(
    ryla: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_mia(ryla)
    monkeypatch.setenv("RYLA_TARGET_ACCESS_TOKEN", "IGQVJsecret-token-value")
    result = ryla("target", "add", "mia", "mia-ig", "--kind", "instagram", "--ig-user-id", "1784")
    assert result.exit_code == 0, result.output
    for stored in (tmp_path / "data").rglob("*"):  # the database, its WAL, every file
        assert not stored.is_file() or b"IGQVJsecret" not in stored.read_bytes()
    assert "mia-ig" in ryla("target", "list").output
