"""The ``ryla`` command line: set up, add influencers and posts, trigger steps, run it all.

Every command has ``--help``; bad input prints one ``error:`` line and exits with code 2.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy.exc import DatabaseError, IntegrityError

from admin.calendar_cli import calendar
from admin.character_cli import character
from admin.context import BadInput, CliContext, usage_line
from admin.influencer_cli import influencer
from admin.model_cli import model
from admin.notify_cli import notify
from admin.post_cli import post
from admin.service_cli import beat, run, serve, worker
from admin.status import print_dependencies, print_image_makers, print_status
from admin.status_health import print_health
from admin.target_cli import target
from admin.user_cli import token, user
from admin.workers_cli import workers
from migrations import database_problem
from models import utcnow
from pipeline.errors import InputError, PromptError
from pipeline.health import HealthReport
from pipeline.observe.logs import configure_logging
from pipeline.settings import LogFormat, get_settings
from pipeline.validation import duplicate_of

__all__ = ["RylaGroup", "cli", "demo", "init", "main", "plan", "status"]

_INPUT_ERRORS = (InputError, PromptError)


class RylaGroup(click.Group):
    """Turns every input error into one ``error:`` line and exit code 2.

    The pipeline's own, Click's usage errors (a missing option, a bad value), a unique clash
    the database found at commit (two commands adding the same thing at once), and a prompt
    that has no terminal to ask on.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise BadInput(usage_line(exc)) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _INPUT_ERRORS as exc:
            raise BadInput(str(exc)) from None
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise BadInput(usage_line(exc)) from None
        except IntegrityError as exc:
            clash = duplicate_of(exc)
            if clash is None:
                raise
            raise BadInput(
                f"it already exists ({clash}): another command added the same thing at the same "
                "moment; run yours again to see where it stands"
            ) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            raise BadInput(
                f"cannot use {exc.filename}: {exc.strerror or type(exc).__name__}: check the path "
                "(--data-dir, RYLA_DATA_DIR, --out) exists as a folder and may be written"
            ) from None
        except DatabaseError as exc:
            problem = database_problem(exc)
            if problem is None:
                raise
            raise BadInput(problem) from None
        except click.Abort:
            if sys.stdin is not None and sys.stdin.isatty():
                raise  # Ctrl-C at a prompt: Click's own "Aborted!"
            raise BadInput(
                "there is no terminal to ask on: give the answer as an option instead "
                "(see the command's --help, e.g. --yes)"
            ) from None


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
    ctx.obj = CliContext(verbose=verbose)
    ctx.call_on_close(ctx.obj.close)
    level = logging.DEBUG if verbose else logging.WARNING
    configure_logging(level=level, fmt=_log_format(), tag=log_tag)


def _log_format() -> LogFormat:
    try:
        return get_settings().log_format
    except ValidationError:  # the command itself reports the bad setting in one line
        return LogFormat.TEXT


_GROUPS = (influencer, character, calendar, post, target, notify, user, token, workers, model)
for _command in (*_GROUPS, worker, beat, run, serve):
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
    """Whether the database and broker answer, posts by state, what comes next, the generator,
    workers seen, what needs a person, and GPU cost so far.

    Exits with status 1 when the database or the broker is unreachable.
    """
    from pipeline.generators import active_generator
    from pipeline.planning.influencers import get_influencer

    report = _dependencies_of(obj)
    print_dependencies(report, obj.settings)
    if "database" not in report.unreachable:
        with obj.session() as session:
            if handle is not None:
                get_influencer(session, handle)  # an unknown one is an error, not "no posts"
            print_status(session, handle=handle)
            click.echo(f"\n{active_generator(obj.settings).line} [this machine]")
            print_image_makers(session)
            print_health(session, settings=obj.settings, now=utcnow())
    if not report.ok:
        raise click.exceptions.Exit(1)


def _dependencies_of(obj: CliContext) -> HealthReport:
    """Probe the database and the broker. A database that answers without RYLA's tables (or at
    an older revision) is one error line before anything is printed; a SQLite file is looked
    for before the probe, which would create it."""
    if obj.settings.is_sqlite:
        obj.require_schema()
    report = obj.health_check().report()
    if not obj.settings.is_sqlite and "database" not in report.unreachable:
        obj.require_schema()
    return report


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
    """Run a few sample posts through real workers, in a data folder of its own (DATA_DIR/demo)."""
    from admin.demo import demo_environment, run_demo

    os.environ.update(demo_environment(obj.settings.data_dir))  # the workers inherit it
    demo_obj = CliContext(verbose=obj.verbose)
    try:
        if not run_demo(demo_obj, count=count, timeout=timeout):
            raise click.exceptions.Exit(1)
    finally:
        demo_obj.close()


def main() -> None:
    cli(prog_name="ryla")
