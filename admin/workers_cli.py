"""``ryla workers``: the workers and beats seen through their heartbeats; ``--check NAME`` is
the healthcheck a container runs (exit 0 while NAME's heartbeat is fresh, 1 when not).
"""

from __future__ import annotations

import click

from admin.context import CliContext
from admin.status_health import ago
from models import utcnow
from pipeline.observe.logs import zoned
from pipeline.observe.workers import STALE_AFTER, workers_seen

__all__ = ["workers"]


@click.command()
@click.option(
    "--check",
    "name",
    default=None,
    help="Exit 1 unless this process (e.g. cpu@$HOSTNAME or beat@$HOSTNAME) is alive.",
)
@click.option(
    "--within",
    type=click.FloatRange(1, 86_400),
    default=None,
    help="Seconds a heartbeat stays fresh (default: 3 heartbeat intervals).",
)
@click.pass_obj
def workers(obj: CliContext, name: str | None, within: float | None) -> None:
    """Workers and beats seen, with their queues, state and last heartbeat."""
    now = utcnow()
    fresh = within or obj.settings.heartbeat_seconds * STALE_AFTER
    with obj.session() as session:
        seen = workers_seen(session, now=now, heartbeat_seconds=fresh / STALE_AFTER)
    if name is not None:
        match = next((w for w in seen if w.name == name), None)
        if match is None or not match.alive:
            last = f"last seen {ago(match.age(now))}" if match else "never seen"
            click.echo(f"{name}: not alive ({last})", err=True)
            raise click.exceptions.Exit(1)
        click.echo(f"{name}: {match.state}, seen {ago(match.age(now))}")
        return
    if not seen:
        click.echo("no worker or beat has sent a heartbeat yet: start them with `ryla run`")
    for w in seen:
        alive = "alive" if w.alive else "GONE"
        click.echo(
            f"{w.name:<32} {w.role:<6} {w.queues or '-':<10} {w.state:<9} {alive:<5} "
            f"{ago(w.age(now))} ({zoned(w.last_seen_at)}), up since {zoned(w.started_at)}"
        )
