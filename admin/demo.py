"""``ryla demo``: a sample influencer, a few posts due now, real workers, results on disk.

Runs in its own data folder (``<data dir>/demo``: its own SQLite database, broker, media and
outbox), so a later ``ryla run`` never publishes from it; its sample calendar is left paused.
Shows each post's progress as it moves, then where the images and the outbox are.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.context import CliContext
from admin.processes import EMBEDDED_WORKERS, start_workers, stop_workers
from models import Asset, AssetKind, Influencer, Post, PostStatus, utcnow
from pipeline.generators import active_generator
from pipeline.generators.prompts import ENVIRONMENTS, SCENES
from pipeline.planning.calendars import add_rule
from pipeline.planning.holds import pause_calendar
from pipeline.planning.influencers import (
    CharacterIn,
    InfluencerIn,
    create_character,
    create_influencer,
)
from pipeline.planning.posts import PostIn, create_post
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.settings import Settings

__all__ = ["DEMO_CALENDAR", "DEMO_HANDLE", "demo_environment", "run_demo", "seed_demo"]

DEMO_HANDLE = "ryla.demo"
DEMO_CALENDAR = "daily"
_SETTLED = {
    PostStatus.PUBLISHED,
    PostStatus.FAILED,
    PostStatus.UNKNOWN,
    PostStatus.MISSED,
    PostStatus.CANCELLED,
    PostStatus.AWAITING_APPROVAL,
}


def seed_demo(session: Session, *, count: int, settings: Settings, now: datetime) -> list[int]:
    """Create the demo influencer once, then ``count`` posts due now; return their ids."""
    exists = select(Influencer.id).where(Influencer.handle == DEMO_HANDLE)
    if session.scalars(exists).first() is None:
        _seed_influencer(session, settings=settings, now=now)
    scenes, environments = list(SCENES), list(ENVIRONMENTS)
    ids = []
    for i in range(count):
        post = create_post(
            session=session,
            handle=DEMO_HANDLE,
            settings=settings,
            now=now,
            data=PostIn(
                now + timedelta(seconds=i),  # one post per instant
                scene=scenes[i % len(scenes)],
                environment=environments[i % len(environments)],
                caption_text=f"Demo post {i + 1}",
                hashtags=["demo"],
                lead_minutes=0,
            ),
        )
        ids.append(post.id)
    return ids


def _seed_influencer(session: Session, *, settings: Settings, now: datetime) -> None:
    """The demo influencer, its character and a daily calendar."""
    create_influencer(
        session=session,
        data=InfluencerIn(
            DEMO_HANDLE,
            "Mia Demo",
            "Europe/Berlin",
            persona="Berlin-based travel and lifestyle creator",
            voice="warm, upbeat, short",
            caption_template="{text} ({day}, {scene})",
            default_hashtags=["ryla", "aiinfluencer"],
        ),
    )
    create_character(
        session=session,
        handle=DEMO_HANDLE,
        data=CharacterIn(
            "Mia",
            identity_prompt="a 26 year old woman",
            hair="long wavy auburn hair",
            eyes="green eyes",
            features="light freckles",
            default_outfit="a cream knit sweater",
            seed=4242,
        ),
    )
    add_rule(
        session=session,
        handle=DEMO_HANDLE,
        calendar_name=DEMO_CALENDAR,
        rule=RuleIn(
            days="daily",
            times="09:00,13:00,19:00",
            scenes=list(SCENES)[:4],
            environments=list(ENVIRONMENTS)[:3],
            caption_text="New day, new story",
        ),
        settings_in=CalendarSettingsIn(),
        character=None,
        settings=settings,
        now=now,
    )
    # Planned but paused: the calendar shows how planning looks, and publishes nothing.
    pause_calendar(session=session, handle=DEMO_HANDLE, name=DEMO_CALENDAR, actor="demo")


def demo_environment(data_dir: Path) -> dict[str, str]:
    """The environment the demo (and the workers it starts) run under: the embedded defaults in
    ``data_dir/demo``, whatever database or broker the real pipeline is configured with."""
    return {"RYLA_DATA_DIR": str(data_dir / "demo"), "RYLA_DATABASE_URL": "", "RYLA_BROKER_URL": ""}


def run_demo(obj: CliContext, *, count: int, timeout: int) -> bool:
    from migrations import migrate
    from tasks.beat import run_beat

    started = time.monotonic()
    settings = obj.settings
    click.echo(f"ryla demo: data in {settings.data_dir}")
    click.echo(active_generator(settings).line)
    migrate(settings)
    with obj.session() as session:
        ids = seed_demo(session, count=count, settings=obj.settings, now=utcnow())
    logs = settings.data_dir / "logs"
    click.echo(
        f"planned posts {', '.join(map(str, ids))} for {DEMO_HANDLE}, due now; "
        f"starting workers (logs in {logs})"
    )
    procs = start_workers(EMBEDDED_WORKERS, log_dir=logs)
    stop = threading.Event()
    beat = threading.Thread(
        target=run_beat, args=(obj.app, settings), kwargs={"stop": stop}, daemon=True
    )
    beat.start()
    try:
        first = _follow(obj, ids, started=started, timeout=timeout)
    finally:
        stop.set()
        beat.join(10)
        stop_workers(procs)
    ok = _summarise(obj, ids, first)
    _say_where(obj)
    return ok


def _say_where(obj: CliContext) -> None:
    folder = obj.settings.data_dir
    click.echo(
        f"\nThe demo ran in its own data folder {folder}; your pipeline's data is untouched.\n"
        f"Its calendar {DEMO_HANDLE}/{DEMO_CALENDAR} is paused, so nothing else will be posted.\n"
        f"Look around: `ryla --data-dir {folder} status`; start over: remove {folder}."
    )


def _follow(obj: CliContext, ids: list[int], *, started: float, timeout: int) -> float | None:
    """Print every state change until all posts settle; return seconds to the first published."""
    seen: dict[int, PostStatus] = {}
    first: float | None = None
    while time.monotonic() - started < timeout:
        with obj.session() as session:
            rows = session.execute(select(Post.id, Post.status).where(Post.id.in_(ids)))
            current = dict(rows.all())
        elapsed = time.monotonic() - started
        for post_id, status in sorted(current.items()):
            if seen.get(post_id) is not status:
                click.echo(f"  {elapsed:6.1f}s  post {post_id:<4} {status.value}")
                seen[post_id] = status
                if status is PostStatus.PUBLISHED and first is None:
                    first = elapsed
        if all(s in _SETTLED for s in current.values()):
            return first
        time.sleep(0.25)
    click.echo(f"  gave up waiting after {timeout} s; see the worker logs", err=True)
    return first


def _summarise(obj: CliContext, ids: list[int], first: float | None) -> bool:
    with obj.session() as session:
        posts = session.scalars(select(Post).where(Post.id.in_(ids)).order_by(Post.id)).all()
        for post in posts:
            _describe(session, obj, post)
    published = sum(p.status is PostStatus.PUBLISHED for p in posts)
    click.echo(
        f"\n{published}/{len(posts)} posts published to the outbox {obj.settings.outbox_dir}"
    )
    if first is not None:
        click.echo(f"time to first post: {first:.1f} s")
    return published == len(posts)


def _describe(session: Session, obj: CliContext, post: Post) -> None:
    click.echo(
        f"\npost {post.id}: {post.status.value}"
        + (f" — {post.last_error}" if post.last_error else "")
    )
    if post.external_id:
        click.echo(f"  outbox: {post.external_id}")
    assets = session.scalars(
        select(Asset)
        .where(
            Asset.post_id == post.id,
            Asset.generation == post.generation,
            Asset.kind != AssetKind.THUMBNAIL,
        )
        .order_by(Asset.id)
    ).all()
    for asset in assets:
        path = Path(obj.settings.storage_dir, asset.storage_key)
        click.echo(f"  {asset.format:<15} {asset.width}x{asset.height}  {path}")
