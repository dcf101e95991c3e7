"""``ryla calendar edit|pause|resume|delete|list|import`` and ``ryla influencer pause|resume``.

``register`` adds them to the ``calendar`` and ``influencer`` groups; bad input is one line.
"""

from __future__ import annotations

from pathlib import Path

import click

from admin.context import CliContext
from models import utcnow
from pipeline.calendar_import import import_rows, read_rows
from pipeline.calendars import edit_calendar, list_calendars
from pipeline.generators.sizes import NATIVE_SIZES
from pipeline.holds import (
    HoldReport,
    delete_calendar,
    pause_calendar,
    pause_influencer,
    resume_calendar,
    resume_influencer,
)
from pipeline.rules import CalendarSettingsIn, RuleIn

__all__ = ["register"]


def _given(values: tuple[str, ...], *, split: bool = True) -> list[str] | None:
    """None when the option was not given; otherwise its items (possibly none: an error later)."""
    if not values:
        return None
    if not split:
        return list(values)
    return [part.strip() for value in values for part in value.split(",")]


@click.command("edit")
@click.argument("handle")
@click.argument("name")
@click.option("--rule", "rule_id", type=int, default=None, help="Rule id (see `calendar list`).")
@click.option("--days", default=None, help="mon,wed,fri | daily | weekdays | weekends.")
@click.option("--times", default=None, help="Local HH:MM times, e.g. 09:00,18:30.")
@click.option("--rrule", default=None, help="RFC 5545 rule, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9.")
@click.option("--start", default=None, help="The rrule's local start: YYYY-MM-DD [HH:MM].")
@click.option("--scene", "scenes", multiple=True, help="Scene presets to rotate.")
@click.option("--environment", "environments", multiple=True, help="Environments to rotate.")
@click.option("--outfit", "outfits", multiple=True, help="Outfits to rotate (one per option).")
@click.option(
    "--caption-template",
    "captions",
    multiple=True,
    help="Caption templates to rotate; variables such as {scene} {day} {time} {name}.",
)
@click.option("--caption", default=None, help="Caption text for every slot.")
@click.option("--hashtag", "hashtags", multiple=True)
@click.option("--format", "formats", multiple=True, help=f"One of {', '.join(NATIVE_SIZES)}.")
@click.option("--lead-minutes", type=int, default=None, help="Generate this long before.")
@click.option("--horizon-days", type=int, default=None, help="Days of posts planned ahead.")
@click.pass_obj
def calendar_edit(
    obj: CliContext,
    handle: str,
    name: str,
    rule_id: int | None,
    days: str | None,
    times: str | None,
    rrule: str | None,
    start: str | None,
    scenes: tuple[str, ...],
    environments: tuple[str, ...],
    outfits: tuple[str, ...],
    captions: tuple[str, ...],
    caption: str | None,
    hashtags: tuple[str, ...],
    formats: tuple[str, ...],
    lead_minutes: int | None,
    horizon_days: int | None,
) -> None:
    """Change a rule or the calendar; re-plans only future posts no worker has claimed."""
    rule = RuleIn(
        days=days,
        times=times,
        rrule=rrule,
        start=start,
        scenes=_given(scenes),
        environments=_given(environments),
        outfits=_given(outfits, split=False),
        caption_templates=_given(captions, split=False),
        caption_text=caption,
        hashtags=_given(hashtags),
    )
    settings_in = CalendarSettingsIn(lead_minutes, _given(formats), horizon_days)
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


def _hold_line(subject: str, report: HoldReport, *, paused: bool) -> str:
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


@click.command("pause")
@click.argument("handle")
@click.argument("name")
@click.pass_obj
def calendar_pause(obj: CliContext, handle: str, name: str) -> None:
    """Hold a calendar's posts where they are until it is resumed."""
    with obj.session() as session:
        report = pause_calendar(session=session, handle=handle, name=name, actor=obj.actor)
    click.echo(_hold_line(f"calendar {name}", report, paused=True))


@click.command("resume")
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
    click.echo(_hold_line(f"calendar {name}", report, paused=False))


@click.command("delete")
@click.argument("handle")
@click.argument("name")
@click.confirmation_option(prompt="Cancel this calendar's future posts and delete it?")
@click.pass_obj
def calendar_delete(obj: CliContext, handle: str, name: str) -> None:
    """Delete a calendar: its future posts are cancelled, its history is kept."""
    with obj.session() as session:
        done = delete_calendar(session=session, handle=handle, name=name, actor=obj.actor)
    click.echo(
        f"calendar {name} deleted: {done.cancelled} post(s) cancelled, {done.kept} kept as "
        f"history ({done.in_flight} publishing right now, left to finish)"
    )


@click.command("list")
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
        for rule in row.rules:
            click.echo(f"    rule {rule}")


@click.command("import")
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


@click.command("pause")
@click.argument("handle")
@click.pass_obj
def influencer_pause(obj: CliContext, handle: str) -> None:
    """Hold all of an influencer's posts where they are until resumed."""
    with obj.session() as session:
        report = pause_influencer(session=session, handle=handle, actor=obj.actor)
    click.echo(_hold_line(f"influencer {handle}", report, paused=True))


@click.command("resume")
@click.argument("handle")
@click.pass_obj
def influencer_resume(obj: CliContext, handle: str) -> None:
    """Release a paused influencer; slots that passed long ago are marked missed."""
    with obj.session() as session:
        report = resume_influencer(
            session=session, handle=handle, settings=obj.settings, now=utcnow(), actor=obj.actor
        )
    click.echo(_hold_line(f"influencer {handle}", report, paused=False))


def register(calendar: click.Group, influencer: click.Group) -> None:
    """Add these commands to the existing ``calendar`` and ``influencer`` groups."""
    for command in (
        calendar_edit,
        calendar_pause,
        calendar_resume,
        calendar_delete,
        calendar_list,
        calendar_import,
    ):
        calendar.add_command(command)
    influencer.add_command(influencer_pause)
    influencer.add_command(influencer_resume)
