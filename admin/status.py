"""``ryla status``: whether the database and broker answer, posts by state per influencer, as
a table, then what comes next.

Reads only; one query for the counts and one for the upcoming posts.
"""

from __future__ import annotations

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Influencer, Post, PostStatus, utcnow
from pipeline.health import HealthReport, redact_url
from pipeline.settings import Settings

__all__ = ["print_dependencies", "print_status", "status_counts"]

COLUMNS = list(PostStatus)


def status_counts(session: Session, handle: str | None = None) -> dict[str, dict[str, int]]:
    stmt = (
        select(Influencer.handle, Post.status, func.count())
        .join(Post, Post.influencer_id == Influencer.id)
        .group_by(Influencer.handle, Post.status)
    )
    if handle:
        stmt = stmt.where(Influencer.handle == handle)
    table: dict[str, dict[str, int]] = {}
    for name, status, count in session.execute(stmt):
        table.setdefault(name, {})[status.value] = count
    return table


def print_dependencies(report: HealthReport, settings: Settings) -> None:
    """One line per dependency: whether it answers, where it is, and what it said if not."""
    where = {"database": settings.database_url, "broker": settings.broker_url}
    for dep in report.dependencies:
        state = "reachable" if dep.reachable else "unreachable"
        error = f"  ({dep.error})" if dep.error else ""
        click.echo(f"{dep.name:<9} {state:<12} {redact_url(where.get(dep.name, '-'))}{error}")
    if not report.ok:
        click.echo(
            "workers and the beat wait and retry by themselves; posts resume once it is back"
        )
    click.echo()


def print_status(session: Session, *, handle: str | None = None, upcoming: int = 5) -> None:
    table = status_counts(session, handle)
    if not table:
        click.echo(
            "no posts yet: add one with `ryla post add` or a calendar with `ryla calendar add`"
        )
        return
    used = [s for s in COLUMNS if any(s.value in row for row in table.values())]
    width = max(len("influencer"), *(len(h) for h in table))
    click.echo(f"{'influencer':<{width}}  " + "  ".join(f"{s.value:>{len(s.value)}}" for s in used))
    for name in sorted(table):
        row = table[name]
        cells = "  ".join(f"{row.get(s.value, 0):>{len(s.value)}}" for s in used)
        click.echo(f"{name:<{width}}  {cells}")
    _print_upcoming(session, handle, upcoming)


def _print_upcoming(session: Session, handle: str | None, limit: int) -> None:
    stmt = (
        select(Post.id, Influencer.handle, Post.status, Post.local_publish_time, Post.scene)
        .join(Influencer, Influencer.id == Post.influencer_id)
        .where(Post.publish_at >= utcnow(), Post.status.not_in([PostStatus.CANCELLED]))
        .order_by(Post.publish_at)
        .limit(limit)
    )
    if handle:
        stmt = stmt.where(Influencer.handle == handle)
    rows = session.execute(stmt).all()
    if rows:
        click.echo("\nnext up:")
    for post_id, name, status, when, scene in rows:
        click.echo(f"  #{post_id:<5} {name:<20} {when:<34} {status.value:<17} {scene or '-'}")
