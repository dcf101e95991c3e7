"""The ``ryla`` command line: set up, add influencers and posts, trigger steps, run it all.

Every command has ``--help``; bad input prints one ``error:`` line and exits with code 2.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from admin.calendar_cli import calendar
from admin.character_cli import character
from admin.context import BadInput, CliContext
from admin.influencer_cli import influencer
from admin.model_cli import model
from admin.post_cli import post
from admin.service_cli import beat, run, serve, worker
from admin.status import print_dependencies, print_status
from admin.target_cli import target
from pipeline.errors import InputError, PromptError

__all__ = ["RylaGroup", "cli", "demo", "init", "main", "plan", "status"]

_INPUT_ERRORS = (InputError, PromptError)


class RylaGroup(click.Group):
    """Turns the pipeline's input errors into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _INPUT_ERRORS as exc:
            raise BadInput(str(exc)) from None


@click.group(cls=RylaGroup)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the embedded database, media and outbox live (RYLA_DATA_DIR).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
# `ryla run` names each process it starts, since their lines share one terminal.
@click.option("--log-tag", default="", hidden=True)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: bool, log_tag: str) -> None:
    """RYLA: turn AI influencers' content calendars into published Instagram posts."""
    if data_dir is not None:
        os.environ["RYLA_DATA_DIR"] = str(data_dir)  # worker processes inherit it
    tag = f"[{log_tag}] " if log_tag else ""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s",
    )
    ctx.obj = CliContext(verbose=verbose)
    ctx.call_on_close(ctx.obj.close)


for _command in (influencer, character, calendar, post, target, model, worker, beat, run, serve):
    cli.add_command(_command)


@cli.command()
@click.pass_obj
def init(obj: CliContext) -> None:
    """Create or migrate the database to the newest schema."""
    from migrations import migrate

    migrate(obj.settings)
    click.echo(f"database ready: {_safe_url(obj.settings.database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cli.command()
@click.option("--handle", default=None, help="Only this influencer's posts.")
@click.pass_obj
def status(obj: CliContext, handle: str | None) -> None:
    """Whether the database and broker answer, posts by state, and the next ones due.

    Exits with status 1 when the database or the broker is unreachable.
    """
    report = obj.health_check().report()
    print_dependencies(report, obj.settings)
    if "database" not in report.unreachable:
        with obj.session() as session:
            print_status(session, handle=handle)
    if not report.ok:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("handle")
@click.option("--days", type=click.IntRange(1, 90), default=14, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the PNG (default: RYLA_DATA_DIR/plans/HANDLE.png).",
)
@click.pass_obj
def plan(obj: CliContext, handle: str, days: int, out: Path | None) -> None:
    """Draw the coming feed as a 3-column profile grid (PNG) and print its path."""
    from models import utcnow
    from pipeline.media.storage import LocalStorage
    from pipeline.planning.feed_plan import draw_feed_plan, plan_tiles
    from pipeline.planning.influencers import get_influencer

    with obj.session() as session:
        influencer = get_influencer(session, handle)
        tiles = plan_tiles(
            session,
            influencer_id=influencer.id,
            days=days,
            now=utcnow(),
            storage=LocalStorage(obj.settings.storage_dir),
        )
    png = draw_feed_plan(
        tiles, title=f"@{handle} - next {days} days", subtitle=f"{len(tiles)} posts"
    )
    target = out or obj.settings.data_dir / "plans" / f"{handle}.png"
    LocalStorage(target.parent).put(target.name, png)  # written whole or not at all
    click.echo(str(target))


@cli.command()
@click.option(
    "--posts",
    "count",
    type=click.IntRange(1, 10),
    default=3,
    show_default=True,
    help="How many posts to run through the pipeline now.",
)
@click.option(
    "--timeout",
    type=click.IntRange(10, 3600),
    default=180,
    show_default=True,
    help="Give up waiting after this many seconds.",
)
@click.pass_obj
def demo(obj: CliContext, count: int, timeout: int) -> None:
    """Seed a sample influencer, run a few posts now through real workers, show the results."""
    from admin.demo import run_demo

    if not run_demo(obj, count=count, timeout=timeout):
        raise click.exceptions.Exit(1)


def main() -> None:
    cli(prog_name="ryla")
