"""``ryla status``: whether the database and broker answer, posts by state per influencer, as
a table, then what comes next, what waits for a person, and which generator made the latest
images.

Reads only: a few small queries.
"""

from __future__ import annotations

from collections import Counter

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Asset, AssetKind, ContentCalendar, Influencer, Post, PostStatus, utcnow
from pipeline.health import HealthReport, redact_url
from pipeline.planning.influencers import handle_key
from pipeline.settings import Settings

__all__ = [
    "print_broken_calendars",
    "print_dependencies",
    "print_image_makers",
    "print_status",
    "status_counts",
]

COLUMNS = list(PostStatus)


def status_counts(session: Session, handle: str | None = None) -> dict[str, dict[str, int]]:
    stmt = (
        select(Influencer.handle, Post.status, func.count())
        .join(Post, Post.influencer_id == Influencer.id)
        .group_by(Influencer.handle, Post.status)
    )
    if handle:
        stmt = stmt.where(Influencer.handle == handle_key(handle))
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
    print_broken_calendars(session, handle)
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
        stmt = stmt.where(Influencer.handle == handle_key(handle))
    rows = session.execute(stmt).all()
    if rows:
        click.echo("\nnext up:")
    for post_id, name, status, when, scene in rows:
        click.echo(f"  #{post_id:<5} {name:<20} {when:<34} {status.value:<17} {scene or '-'}")


def print_broken_calendars(session: Session, handle: str | None) -> None:
    """Calendars the beat cannot plan, first: their other posts go on, these get no new ones."""
    stmt = (
        select(Influencer.handle, ContentCalendar.name, ContentCalendar.broken_reason)
        .join(Influencer, Influencer.id == ContentCalendar.influencer_id)
        .where(ContentCalendar.broken_reason.is_not(None))
        .order_by(Influencer.handle, ContentCalendar.name)
    )
    if handle:
        stmt = stmt.where(Influencer.handle == handle_key(handle))
    for name, calendar, reason in session.execute(stmt):
        click.echo(f"BROKEN calendar {name}/{calendar}: {reason} (see `ryla calendar list {name}`)")


def print_image_makers(session: Session, *, latest: int = 100) -> None:
    """Which generators made the latest images (the workers' choice, wherever they run)."""
    metas = session.scalars(
        select(Asset.meta)
        .where(Asset.kind == AssetKind.RAW)
        .order_by(Asset.id.desc())
        .limit(latest)
    ).all()
    if metas:
        made = Counter(str(meta.get("generator") or "unknown") for meta in metas)
        click.echo(
            f"latest {len(metas)} images made by: "
            + ", ".join(f"{name} {count}" for name, count in made.most_common())
        )
