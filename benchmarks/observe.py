"""Observability benchmark on PostgreSQL: how long the notification scan and a metrics scrape
take on a production-size database (100,000 posts and raw images, 300,000 state moves).

Run ``python benchmarks/observe.py`` with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)
and Redis on 127.0.0.1:6379 (db 13); prints a table, writes ``benchmarks/results/observe.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from migrations import migrate
from models import (
    Asset,
    AssetKind,
    ChannelKind,
    Character,
    Influencer,
    Post,
    PostEvent,
    PostStatus,
    WorkerHeartbeat,
)
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.notify.channels import ChannelIn, create_channel
from pipeline.notify.scan import run_scan
from pipeline.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "observe.json"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/13"
S = PostStatus
STATES = (
    [S.PUBLISHED] * 70 + [S.PLANNED] * 25 + [S.FAILED, S.MISSED, S.UNKNOWN, S.READY, S.CANCELLED]
)


def fresh_database() -> tuple[str, Callable[[], None]]:
    name = f"ryla_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def seed(factory: sessionmaker[Session], *, influencers: int, posts: int, now: datetime) -> None:
    """Influencers, posts in a production mix of states, one raw image each, three moves each."""
    rng = random.Random(7)
    with session_scope(factory) as s:
        s.execute(
            insert(Influencer),
            [
                {"handle": f"inf{i}", "display_name": f"I {i}", "timezone": "UTC"}
                for i in range(influencers)
            ],
        )
        s.execute(
            insert(Character), [{"influencer_id": i + 1, "name": "c"} for i in range(influencers)]
        )
    for start in range(0, posts, 10_000):
        ids = range(start + 1, min(posts, start + 10_000) + 1)
        rows, assets, events = [], [], []
        for pid in ids:
            owner = pid % influencers + 1
            status = rng.choice(STATES)
            when = now - timedelta(hours=rng.randint(1, 24 * 90))
            rows.append(
                {
                    "id": pid,
                    "influencer_id": owner,
                    "character_id": owner,
                    "status": status,
                    "publish_at": when,
                    "generate_at": when,
                }
            )
            assets.append(
                {
                    "post_id": pid,
                    "generation": 1,
                    "kind": AssetKind.RAW,
                    "format": "raw",
                    "storage_key": f"posts/{pid}/g1/raw.png",
                    "content_type": "image/png",
                    "width": 896,
                    "height": 1120,
                    "bytes": 1,
                    "sha256": "0" * 64,
                    "meta": {"duration_s": 1.3, "cost": 0.0011, "generator": "zimage"},
                }
            )
            for src, dst in ((None, S.PLANNED), (S.PLANNED, S.GENERATING), (S.GENERATING, status)):
                events.append(
                    {
                        "post_id": pid,
                        "from_status": src,
                        "to_status": dst,
                        "at": when,
                        "actor": "bench",
                        "detail": "",
                    }
                )
        with session_scope(factory) as s:
            s.execute(insert(Post), rows)
            s.execute(insert(Asset), assets)
            s.execute(insert(PostEvent), events)
    with session_scope(factory) as s:
        s.execute(text("SELECT setval('posts_id_seq', (SELECT max(id) FROM posts))"))
        s.execute(
            insert(WorkerHeartbeat),
            [
                {
                    "name": f"w{i}@box",
                    "role": "worker",
                    "queues": "cpu",
                    "pid": i,
                    "state": "ready",
                    "started_at": now,
                    "last_seen_at": now,
                }
                for i in range(20)
            ],
        )


def new_events(factory: sessionmaker[Session], count: int, failed: int, at: datetime) -> None:
    rng = random.Random(count)
    with session_scope(factory) as s:
        top = s.scalar(select(Post.id).order_by(Post.id.desc()).limit(1)) or 1
        s.execute(
            insert(PostEvent),
            [
                {
                    "post_id": rng.randint(1, top),
                    "from_status": S.GENERATING,
                    "to_status": S.FAILED if i < failed else S.GENERATED,
                    "at": at,
                    "actor": "bench",
                    "detail": "x",
                }
                for i in range(count)
            ],
        )


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(round((time.perf_counter() - started) * 1000, 1))
    return times


def bench(args: argparse.Namespace) -> dict[str, Any]:
    url, drop = fresh_database()
    redis.Redis.from_url(REDIS_URL).flushdb()
    data = Path(tempfile.mkdtemp())
    settings = Settings(
        data_dir=data, database_url=url, broker_url=REDIS_URL, secret_key=secrets.token_urlsafe(32)
    )  # type: ignore[arg-type]
    try:
        migrate(settings)
        engine = make_engine(settings)
        factory = make_session_factory(engine)
        now = datetime.now(UTC)
        started = time.perf_counter()
        seed(factory, influencers=args.influencers, posts=args.posts, now=now)
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
        seeded = time.perf_counter() - started
        for i in range(3):
            data_in = ChannelIn(
                f"c{i}", ChannelKind.WEBHOOK, {"format": "json"}, {"url": "https://h.example.com/x"}
            )
            with session_scope(factory) as s:
                create_channel(
                    session=s, settings=settings, data=data_in, now=now - timedelta(days=1)
                )
        scan = lambda: _scan(factory, settings, now)  # noqa: E731
        scan()  # the cursor, once
        quiet = timed(scan, args.runs)
        busy = []
        for run in range(args.runs):
            new_events(factory, args.backlog, args.failed, now - timedelta(minutes=2))
            busy += timed(lambda r=run: _scan(factory, settings, now + timedelta(hours=r + 1)), 1)
        from tasks.metrics import metrics_registry, render_metrics

        registry = metrics_registry(settings)
        scrape = timed(lambda: render_metrics(registry), args.runs)
        engine.dispose()
        return {
            "posts": args.posts,
            "influencers": args.influencers,
            "raw_images": args.posts,
            "events": args.posts * 3 + args.backlog * args.runs,
            "seed_s": round(seeded, 1),
            "scan_quiet_ms_median": statistics.median(quiet),
            "scan_quiet_ms_all": quiet,
            "backlog_events": args.backlog,
            "backlog_failed": args.failed,
            "scan_backlog_ms_median": statistics.median(busy),
            "scan_backlog_ms_all": busy,
            "scrape_ms_median": statistics.median(scrape),
            "scrape_ms_all": scrape,
            "scrape_bytes": len(render_metrics(registry)[0]),
        }
    finally:
        drop()


def _scan(factory: sessionmaker[Session], settings: Settings, now: datetime) -> None:
    with session_scope(factory) as s:
        run_scan(s, settings=settings, now=now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--influencers", type=int, default=1_000)
    parser.add_argument("--backlog", type=int, default=1_000, help="new moves per scan")
    parser.add_argument("--failed", type=int, default=50, help="of which failed")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        **bench(args),
    }
    rows = [
        (
            f"seed {result['posts']:,} posts, images, {result['posts'] * 3:,} moves",
            f"{result['seed_s']} s",
            "-",
        ),
        (
            "notification scan, nothing new",
            f"{result['scan_quiet_ms_median']} ms median",
            "<< 30 s interval",
        ),
        (
            f"scan with {args.backlog:,} new moves ({args.failed} failed, 3 channels)",
            f"{result['scan_backlog_ms_median']} ms median",
            "<< 30 s interval",
        ),
        (
            "metrics scrape (database + Redis)",
            f"{result['scrape_ms_median']} ms median",
            "< 10 s timeout",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<22}  {target}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
