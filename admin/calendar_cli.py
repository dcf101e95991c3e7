"""``ryla calendar add|edit|pause|resume|delete|list|import``: recurring slots.

Add, edit and import share one validation path (``pipeline.planning.rules``); bad input is one
line. List options take commas or repetition (``--scene a,b`` or ``--scene a --scene b``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from admin.context import ROW_ID, BadInput, CliContext, given_values
from models import utcnow
from pipeline.generators.sizes import NATIVE_SIZES
from pipeline.planning.calendars import add_rule, edit_calendar, list_calendars
from pipeline.planning.holds import (
    HoldReport,
    delete_calendar,
    pause_calendar,
    resume_calendar,
)
from pipeline.planning.imports import import_rows, read_rows
from pipeline.planning.rules import CalendarSettingsIn, RuleIn, describe_rule

__all__ = [
    "calendar",
    "calendar_add",
    "calendar_delete",
    "calendar_edit",
    "calendar_import",
    "calendar_list",
    "calendar_pause",
    "calendar_resume",
    "hold_line",
]

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def calendar() -> None:
    """Content calendars: recurring slots in the influencer's time zone."""


# The options a rule is made of, shared by `calendar add` and `calendar edit`.
_RULE_OPTIONS = (
    click.option("--days", default=None, help="mon,wed,fri | daily | weekdays | weekends."),
    click.option("--times", default=None, help="Local HH:MM times, e.g. 09:00,18:30."),
    click.option(
        "--rrule", default=None, help="RFC 5545 rule, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9."
    ),
    click.option("--start", default=None, help="The rrule's local start: YYYY-MM-DD [HH:MM]."),
    click.option("--scene", "scenes", multiple=True, help="Scene presets to rotate."),
    click.option("--environment", "environments", multiple=True, help="Environments to rotate."),
    click.option("--outfit", "outfits", multiple=True, help="Outfits to rotate (one per option)."),
    click.option(
        "--caption-template",
        "captions",
        multiple=True,
        help="Caption templates to rotate; variables such as {scene} {day} {time} {name}.",
    ),
    click.option("--caption", default=None, help="Caption text for every slot."),
    click.option("--hashtag", "hashtags", multiple=True),
    click.option("--format", "formats", multiple=True, help=f"One of {', '.join(NATIVE_SIZES)}."),
    click.option("--lead-minutes", type=int, default=None, help="Generate this long before."),
    click.option("--horizon-days", type=int, default=None, help="Days of posts planned ahead."),
)


def _rule_options(command: F) -> F:
    for option in reversed(_RULE_OPTIONS):
        command = option(command)
    return command


def _rule_input(options: dict[str, Any]) -> tuple[RuleIn, CalendarSettingsIn]:
    """The rule and calendar settings as given; ``None`` where an option was left out."""
    rule = RuleIn(
        days=options["days"],
        times=options["times"],
        rrule=options["rrule"],
        start=options["start"],
        scenes=given_values(options["scenes"]),
        environments=given_values(options["environments"]),
        outfits=given_values(options["outfits"], split=False),
        caption_templates=given_values(options["captions"], split=False),
        caption_text=options["caption"],
        hashtags=given_values(options["hashtags"]),
    )
    settings_in = CalendarSettingsIn(
        options["lead_minutes"], given_values(options["formats"]), options["horizon_days"]
    )
    return rule, settings_in


@calendar.command("add")
@click.argument("handle")
@click.argument("name")
@click.option("--character", default=None, help="Character name (default: the first).")
@_rule_options
@click.pass_obj
def calendar_add(
    obj: CliContext, handle: str, name: str, character: str | None, **options: Any
) -> None:
    """Add a calendar with a slot rule (or another rule to a calendar); the beat plans it."""
    rule, settings_in = _rule_input(options)
    with obj.session() as session:
        created, new = add_rule(
            session=session,
            handle=handle,
            calendar_name=name,
            rule=rule,
            settings_in=settings_in,
            character=character,
            settings=obj.settings,
            now=utcnow(),
        )
        added = created.rules[-1]
        what = f"calendar {name} added (id {created.id})" if new else f"calendar {name}: rule added"
        click.echo(f"{what}: rule {added.id} {describe_rule(added)}")


@calendar.command("edit")
@click.argument("handle")
@click.argument("name")
@click.option("--rule", "rule_id", type=ROW_ID, default=None, help="Rule id (see `calendar list`).")
@_rule_options
@click.pass_obj
def calendar_edit(
    obj: CliContext, handle: str, name: str, rule_id: int | None, **options: Any
) -> None:
    """Change a rule or the calendar; re-plans only future posts no worker has claimed."""
    rule, settings_in = _rule_input(options)
    with obj.session() as session:
        done = edit_calendar(
            session=session,
            handle=handle,
            name=name,
            rule=rule,
            settings_in=settings_in,
            rule_id=rule_id,
            settings=obj.settings,
            now=utcnow(),
        )
    click.echo(
        f"calendar {name} changed: {done.updated} planned post(s) updated, {done.added} added, "
        f"{done.removed} removed; {done.kept} already claimed left as they were"
    )


def hold_line(subject: str, report: HoldReport, *, paused: bool) -> str:
    if not report.changed:
        return f"{subject} was already {'paused' if paused else 'active'}"
    if paused:
        return (
            f"{subject} paused: {report.held} post(s) held, "
            f"{report.returned} claim(s) taken back before a worker started them"
        )
    line = (
        f"{subject} resumed: {report.missed} slot(s) past the grace window marked missed, "
        f"{report.late} will go out late"
    )
    return line + (f"; {report.held} still held by a pause" if report.held else "")


@calendar.command("pause")
@click.argument("handle")
@click.argument("name")
@click.pass_obj
def calendar_pause(obj: CliContext, handle: str, name: str) -> None:
    """Hold a calendar's posts where they are until it is resumed."""
    with obj.session() as session:
        report = pause_calendar(session=session, handle=handle, name=name, actor=obj.actor)
    click.echo(hold_line(f"calendar {name}", report, paused=True))


@calendar.command("resume")
@click.argument("handle")
@click.argument("name")
@click.pass_obj
def calendar_resume(obj: CliContext, handle: str, name: str) -> None:
    """Release a paused calendar; slots that passed long ago are marked missed, not flooded."""
    with obj.session() as session:
        report = resume_calendar(
            session=session,
            handle=handle,
            name=name,
            settings=obj.settings,
            now=utcnow(),
            actor=obj.actor,
        )
    click.echo(hold_line(f"calendar {name}", report, paused=False))


@calendar.command("delete")
@click.argument("handle")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask (scripts, no terminal).")
@click.pass_obj
def calendar_delete(obj: CliContext, handle: str, name: str, yes: bool) -> None:
    """Delete a calendar: its future posts are cancelled, its history is kept."""
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise BadInput(
                "deleting a calendar needs a yes: add --yes (there is no terminal to ask on)"
            )
        click.confirm("Cancel this calendar's future posts and delete it?", abort=True)
    with obj.session() as session:
        done = delete_calendar(session=session, handle=handle, name=name, actor=obj.actor)
    click.echo(
        f"calendar {name} deleted: {done.cancelled} post(s) cancelled, {done.kept} kept as "
        f"history ({done.in_flight} publishing right now, left to finish)"
    )


@calendar.command("list")
@click.argument("handle", required=False)
@click.pass_obj
def calendar_list(obj: CliContext, handle: str | None) -> None:
    """Calendars with their state, rules, planned posts and the next slot."""
    with obj.session() as session:
        rows = list_calendars(session, handle=handle, now=utcnow())
    if not rows:
        click.echo("no calendars yet: add one with `ryla calendar add` or `ryla calendar import`")
        return
    for row in rows:
        click.echo(
            f"{row.handle}/{row.name}  {row.state}  planned {row.planned}  next {row.next_post}"
        )
        if row.broken:
            click.echo(f"    not planned {row.broken}")
        for rule in row.rules:
            click.echo(f"    rule {rule}")


@calendar.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def calendar_import(obj: CliContext, file: Path) -> None:
    """Import one-off posts and rules from CSV or YAML: every row checked, all or nothing."""
    rows = read_rows(file)
    with obj.session() as session:
        done = import_rows(session, rows, source=file.name, settings=obj.settings, now=utcnow())
    click.echo(
        f"imported {done.posts} post(s) and {done.rules} rule(s) "
        f"({done.calendars} calendar(s) created)"
    )
