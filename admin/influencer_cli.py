"""``ryla influencer add|list|edit|pause|resume``: the accounts that post.

Pausing holds every post where it is; resuming never floods (late slots become ``missed``).
"""

from __future__ import annotations

import click

from admin.calendar_cli import hold_line
from admin.context import BadInput, CliContext, split_values
from models import utcnow
from pipeline.planning.holds import (
    pause_influencer,
    resume_influencer,
)
from pipeline.planning.influencers import (
    InfluencerIn,
    create_influencer,
    influencer_rows,
    set_daily_cap,
)

__all__ = [
    "influencer",
    "influencer_add",
    "influencer_edit",
    "influencer_list",
    "influencer_pause",
    "influencer_resume",
]

_CAP_HELP = (
    "Posts a local day may hold, 1-100 (default: RYLA_MAX_POSTS_PER_DAY, 25; Instagram allows "
    "50-100 API posts a day)."
)


@click.group()
def influencer() -> None:
    """Influencers: the accounts that post."""


@influencer.command("add")
@click.argument("handle")
@click.option("--name", "display_name", required=True, help="Display name.")
@click.option("--timezone", required=True, help="IANA zone, e.g. Europe/Berlin.")
@click.option("--persona", default="", help="Who they are, in a sentence or two.")
@click.option("--voice", default="", help="How their captions sound.")
@click.option(
    "--caption-template",
    default="{text}",
    show_default=True,
    help="Caption template; variables: {text} {scene} {environment} {day} {name}.",
)
@click.option("--hashtag", "hashtags", multiple=True, help="Default hashtags.")
@click.option("--approval/--no-approval", default=False, help="Hold posts for approval.")
@click.option("--max-posts-per-day", type=int, default=None, help=_CAP_HELP)
@click.pass_obj
def influencer_add(
    obj: CliContext,
    handle: str,
    display_name: str,
    timezone: str,
    persona: str,
    voice: str,
    caption_template: str,
    hashtags: tuple[str, ...],
    approval: bool,
    max_posts_per_day: int | None,
) -> None:
    """Add an influencer."""
    data = InfluencerIn(
        handle,
        display_name,
        timezone,
        persona,
        voice,
        caption_template,
        split_values(hashtags),
        approval,
        max_posts_per_day,
    )
    with obj.session() as session:
        created = create_influencer(session=session, data=data)
        click.echo(f"influencer {created.handle} added (id {created.id}, {created.timezone})")


@influencer.command("list")
@click.pass_obj
def influencer_list(obj: CliContext) -> None:
    """Every influencer: handle, name, time zone, daily cap, paused or not, posts to come."""
    with obj.session() as session:
        rows = influencer_rows(session, now=utcnow())
    if not rows:
        click.echo("no influencers yet: add one with `ryla influencer add`")
    for row in rows:
        cap = row.cap if row.cap is not None else f"{obj.settings.max_posts_per_day} (default)"
        flags = ", ".join(
            f for f, on in (("paused", not row.active), ("approval", row.approval)) if on
        )
        click.echo(
            f"{row.handle:<30} {row.name} · {row.timezone} · at most {cap} a day · "
            f"{row.upcoming} post(s) to come{f' · {flags}' if flags else ''}"
        )


@influencer.command("edit")
@click.argument("handle")
@click.option(
    "--max-posts-per-day",
    "cap",
    required=True,
    help=_CAP_HELP[:-1] + "; 'default' follows the setting again.",
)
@click.pass_obj
def influencer_edit(obj: CliContext, handle: str, cap: str) -> None:
    """Change an influencer's daily cap; its calendars and posts must fit under it."""
    value = None if cap.strip().lower() == "default" else _whole_number(cap)
    with obj.session() as session:
        set_daily_cap(
            session=session, handle=handle, cap=value, settings=obj.settings, now=utcnow()
        )
    shown = value if value is not None else f"the setting's {obj.settings.max_posts_per_day}"
    click.echo(f"influencer {handle}: at most {shown} posts a day")


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadInput(
            f"--max-posts-per-day {text!r} is not a whole number: give 1 to 100, or 'default'"
        ) from None


@influencer.command("pause")
@click.argument("handle")
@click.pass_obj
def influencer_pause(obj: CliContext, handle: str) -> None:
    """Hold all of an influencer's posts where they are until resumed."""
    with obj.session() as session:
        report = pause_influencer(session=session, handle=handle, actor=obj.actor)
    click.echo(hold_line(f"influencer {handle}", report, paused=True))


@influencer.command("resume")
@click.argument("handle")
@click.pass_obj
def influencer_resume(obj: CliContext, handle: str) -> None:
    """Release a paused influencer; slots that passed long ago are marked missed."""
    with obj.session() as session:
        report = resume_influencer(
            session=session, handle=handle, settings=obj.settings, now=utcnow(), actor=obj.actor
        )
    click.echo(hold_line(f"influencer {handle}", report, paused=False))
