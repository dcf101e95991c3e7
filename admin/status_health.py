"""The second half of ``ryla status``: workers seen, what needs a person, and GPU cost so far.

Every instant is shown with its zone; ages are counted from the caller's ``now``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from sqlalchemy.orm import Session

from pipeline.observe.attention import gpu_cost, needs_a_person
from pipeline.observe.logs import zoned
from pipeline.observe.workers import workers_seen
from pipeline.settings import Settings

__all__ = ["ago", "print_health"]


def ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86_400:.0f} days ago"


def _print_workers(session: Session, settings: Settings, now: datetime) -> None:
    seen = workers_seen(session, now=now, heartbeat_seconds=settings.heartbeat_seconds)
    if not seen:
        click.echo("\nworkers seen: none yet (start them with `ryla run` or `ryla worker`)")
        return
    click.echo("\nworkers seen:")
    width = max(len(w.name) for w in seen)
    for w in seen:
        state = w.state if w.alive else ("stopped" if w.state == "stopped" else "NOT SEEN")
        when = f"{ago(w.age(now))} ({zoned(w.last_seen_at)})"
        click.echo(f"  {w.name:<{width}}  {w.role:<6} {w.queues or '-':<10} {state:<9} {when}")


def _print_needs(session: Session, settings: Settings, now: datetime) -> None:
    silence = timedelta(seconds=settings.gpu_silence_seconds)
    needs = needs_a_person(session, now=now, silence=silence)
    if not needs:
        click.echo("\nneeds a person: nothing")
        return
    click.echo("\nneeds a person:")
    for item in needs:
        click.echo(f"  • {item.what}\n    → {item.hint}")


def _print_cost(session: Session, settings: Settings, now: datetime) -> None:
    total = gpu_cost(session)
    day = gpu_cost(session, since=now - timedelta(days=1))
    hours = total.gpu_seconds / 3600
    if settings.gpu_cost_per_hour == 0 and total.cost == 0:
        click.echo(
            f"\nGPU: {total.images} image(s), {hours:.2f} GPU-hours; cost not recorded "
            "(set RYLA_GPU_COST_PER_HOUR)"
        )
        return
    click.echo(
        f"\nGPU cost so far: {total.cost:.2f} for {total.images} image(s) ({hours:.2f} GPU-hours); "
        f"last 24 h: {day.cost:.2f} for {day.images} image(s)"
    )


def print_health(session: Session, *, settings: Settings, now: datetime) -> None:
    _print_workers(session, settings, now)
    _print_needs(session, settings, now)
    _print_cost(session, settings, now)
