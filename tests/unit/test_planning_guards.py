"""One post per influencer per instant whatever produces it; races end as "already exists";
commands before ``ryla init`` say so and leave nothing behind; the migration that brings it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import create_engine, func, insert, select, text, update
from sqlalchemy.orm import Session

from admin.cli import cli
from migrations import alembic_config, migrate
from models import Influencer, Post, PostEvent, PostStatus, SlotRule
from pipeline.errors import InputError
from pipeline.planning.expand import expand_due_calendars
from pipeline.planning.imports import ImportRejected, import_rows, read_rows
from pipeline.settings import Settings
from pipeline.validation import inserted_once
from tests.calendar_kit import make_calendar, plan
from tests.conftest import NOW, add_post


def test_reimporting_an_rrule_rule_without_a_start_a_day_later_adds_nothing(
    session: Session, settings: Settings, influencer_id: int, tmp_path: Path
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "rules:\n  - {handle: mia, calendar: evenings, rrule: 'FREQ=DAILY;BYHOUR=19'}\n",
        encoding="utf-8",
    )
    import_rows(session, read_rows(path), source="plan.yaml", settings=settings, now=NOW)
    with pytest.raises(ImportRejected) as caught:
        later = NOW + timedelta(days=1)  # the start defaults to that day: another dtstart
        import_rows(session, read_rows(path), source="plan.yaml", settings=settings, now=later)
    assert caught.value.errors == [
        "row 1 (line 2, rule): this rule adds no slot: rule 1 of calendar 'evenings' already "
        "post at every one of its times in the next 60 days; change that rule with "
        "`ryla calendar edit`"
    ]


def test_rules_with_the_same_slots_plan_each_instant_once(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    """Even rules the door never saw (written by an older version) cannot double a slot."""
    make_calendar(session, settings, days="daily", times="09:00")
    calendar_id = session.scalar(select(SlotRule.calendar_id))
    session.execute(
        insert(SlotRule).values(
            calendar_id=calendar_id, days_of_week=[], times=[],
            rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0", dtstart="2026-11-01T00:00",
            scenes=["travel"], environments=[], outfits=[], caption_text="",
            caption_templates=[], hashtags=[],
        )
    )  # fmt: skip
    session.expire_all()
    assert expand_due_calendars(session, now=NOW, horizon_days=14) == 14
    instants = [at for (at,) in plan(session, Post.publish_at)]
    assert len(instants) == len(set(instants)) == 14


def test_a_calendar_slot_at_a_one_off_posts_instant_is_skipped(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    one_off = add_post(session, at=NOW.replace(hour=8) + timedelta(days=1), now=NOW)  # 09:00 CET
    make_calendar(session, settings, days="daily", times="09:00")
    assert expand_due_calendars(session, now=NOW, horizon_days=3) == 2
    assert plan(session, Post.id)[0] == (one_off,)


def test_a_race_lost_at_the_database_ends_as_already_exists(
    session: Session, influencer_id: int
) -> None:
    """Two commands pass the existence check together; the unique index decides, in a savepoint."""
    with (
        pytest.raises(InputError, match=r"^influencer 'mia' already exists: choose another"),
        inserted_once(session, "influencer 'mia'", "choose another handle"),
    ):
        session.add(Influencer(handle="mia", display_name="Mia", timezone="UTC"))
    assert session.scalar(select(func.count()).select_from(Influencer)) == 1  # still usable


def _clean_env(monkeypatch: pytest.MonkeyPatch, data: Path) -> None:
    for name in ("RYLA_DATABASE_URL", "RYLA_BROKER_URL", "RYLA_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RYLA_DATA_DIR", str(data))


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["calendar", "list"],
        ["post", "add", "mia", "--at", "+1h"],
        ["worker"],
        ["beat"],
        ["post", "generate", "1"],
        ["post", "approve", "1"],
        ["serve"],
    ],
    ids=" ".join,
)
def test_a_command_before_init_says_to_run_it_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    _clean_env(monkeypatch, tmp_path / "data")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert (
        result.output
        == f"error: no database at {tmp_path / 'data' / 'ryla.db'} yet: run `ryla init` first\n"
    )
    assert not (tmp_path / "data").exists()


def test_a_database_left_at_an_older_revision_says_to_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch, tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data")  # type: ignore[call-arg]
    migrate(settings, "1698f0ba8f92")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 2
    assert "is at revision 1698f0ba8f92, this ryla needs" in result.output
    assert result.output.strip().endswith("run `ryla init` to migrate it")
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    after_the_dependencies = CliRunner().invoke(cli, ["status"]).output.split("\n\n", 1)[1]
    assert after_the_dependencies.startswith("no posts yet")


def test_the_migration_cancels_posts_that_share_an_instant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    command.upgrade(alembic_config(url), "1698f0ba8f92")
    engine = create_engine(url)
    at = "2026-12-01 08:00:00.000000"
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO influencers (id, handle, display_name, timezone, persona, voice,"
            " caption_template, default_hashtags, approval_required, active, created_at)"
            " VALUES (1, 'mia', 'Mia', 'UTC', '', '', '{text}', '[]', 0, 1, :at)"
        ), {"at": at})  # fmt: skip
        conn.execute(text(
            "INSERT INTO characters (id, influencer_id, name, age, ethnicity, hair, eyes, body,"
            " features, default_outfit, identity_prompt, negative_prompt, trigger_word,"
            " lora_scale, seed_policy, seed, created_at)"
            " VALUES (1, 1, 'Mia', '', '', '', '', '', '', '', '', '', '', 1.0, 'fixed', 0, :at)"
        ), {"at": at})  # fmt: skip
        for post_id, status in ((1, "planned"), (2, "ready"), (3, "published"), (4, "planned")):
            conn.execute(text(
                "INSERT INTO posts (id, influencer_id, character_id, slot_key, status, publish_at,"
                " generate_at, local_publish_time, attempts, generation, scene, environment,"
                " outfit, prompt_extra, prompt, negative_prompt, caption_text, caption, alt_text,"
                " hashtags, media_type, image_count, formats, created_at, updated_at)"
                " VALUES (:id, 1, 1, :key, :status, :at, :at, '', 0, 0, '', '', '', '', '', '', '',"
                " '', '', '[]', 'image', 1, '[]', :at, :at)"
            ), {"id": post_id, "key": f"1:{post_id}:x", "status": status, "at": at})  # fmt: skip
    command.upgrade(alembic_config(url), "head")
    with Session(engine) as session:
        statuses = dict(session.execute(select(Post.id, Post.status).order_by(Post.id)).all())
        events = session.execute(select(PostEvent.post_id, PostEvent.detail)).all()
    engine.dispose()
    # The ready one went furthest and stays; the published one never counted (it is out).
    assert statuses == {
        1: PostStatus.CANCELLED,
        2: PostStatus.READY,
        3: PostStatus.PUBLISHED,
        4: PostStatus.CANCELLED,
    }
    assert sorted(events) == [
        (1, "duplicate of post 2 at the same instant (one post per instant)"),
        (4, "duplicate of post 2 at the same instant (one post per instant)"),
    ]
    command.downgrade(alembic_config(url), "1698f0ba8f92")


def test_a_post_moved_to_a_terminal_state_frees_its_instant(
    session: Session, influencer_id: int
) -> None:
    first = add_post(session, at=NOW + timedelta(hours=2), now=NOW)
    session.execute(update(Post).where(Post.id == first).values(status=PostStatus.CANCELLED))
    again = add_post(session, at=NOW + timedelta(hours=2), now=NOW)
    assert again != first


def test_an_input_error_names_the_field_to_blame(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    """What the API points at in its 422 answer; the message stays the same one line."""
    from pipeline.planning.calendars import edit_calendar
    from pipeline.planning.rules import CalendarSettingsIn, RuleIn

    make_calendar(session, settings, days="daily", times="09:00")
    fields = {}
    for rule, name in (
        (RuleIn(times="25:00"), "times"),
        (RuleIn(days="someday"), "days"),
        (RuleIn(rrule="FREQ=DAILY", start="soon"), "start"),
        (RuleIn(rrule="FREQ=SOMETIMES"), "rrule"),
        (RuleIn(scenes=["moonwalk"]), "scenes"),
        (RuleIn(hashtags=["no-dash"]), "hashtags"),
        (RuleIn(caption_templates=["{mood}"]), "caption_templates"),
    ):
        with pytest.raises(InputError) as caught:
            edit_calendar(
                session=session, handle="mia", name="main", rule=rule,
                settings_in=CalendarSettingsIn(), rule_id=None, settings=settings, now=NOW,
            )  # fmt: skip
        fields[name] = caught.value.field
    with pytest.raises(InputError) as past:
        add_post(session, at=NOW - timedelta(days=1), now=NOW)
    fields["publish_at"] = past.value.field
    assert fields == {name: name for name in fields}


@pytest.mark.parametrize("args", [["status"], ["init"], ["influencer", "list"]], ids=" ".join)
def test_a_damaged_database_file_is_one_line_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    _clean_env(monkeypatch, tmp_path / "data")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ryla.db").write_bytes(b"\x13not sqlite at all" * 512)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert (
        line.startswith("error: the database") and "cannot be read (file is not a database)" in line
    )
    assert line.endswith(
        "restore it from a backup, or point --data-dir / RYLA_DATABASE_URL elsewhere"
    )


def test_a_data_dir_that_is_a_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("not a folder")
    _clean_env(monkeypatch, tmp_path / "file")
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: cannot use {tmp_path / 'file'}: File exists: check the path (--data-dir, "
        "RYLA_DATA_DIR, --out) exists as a folder and may be written\n"
    )
