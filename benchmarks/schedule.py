"""Schedule benchmark on PostgreSQL: expanding 10,000 influencers' calendars, one beat tick with
1,000 posts due, and 500 posts due in one minute through real workers (preview generator).

Run ``python benchmarks/schedule.py`` with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)
and Redis on 127.0.0.1:6379 (db 12); prints a table, writes ``benchmarks/results/schedule.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from migrations import migrate
from models import Character, ContentCalendar, Influencer, Post, PostEvent, PostStatus, SlotRule
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.planning.expand import expand_due_calendars
from pipeline.settings import Settings
from pipeline.steps.tick import tick
from tasks.app import create_app
from tasks.send import send_dispatches

RESULTS = Path(__file__).resolve().parent / "results" / "schedule.json"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/12"
# Whole-hour offsets all year: every slot lands on a full UTC hour, so a tick at HH:10 finds
# exactly the posts the benchmark made due and none of the planned ones.
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "America/Los_Angeles")
TIMES = ["09:00", "13:00", "19:00"]
SCENES = ["morning_coffee", "city_walk", "golden_hour", "travel"]
ENVIRONMENTS = ["urban", "cafe", "rooftop"]
S = PostStatus


# --- databases --------------------------------------------------------------------------------


@contextmanager
def fresh_settings(data_dir: Path, **overrides: Any) -> Iterator[Settings]:
    """Settings on a PostgreSQL database made for this run (migrated), dropped afterwards."""
    name = f"ryla_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = Settings(  # type: ignore[call-arg]
        data_dir=data_dir,
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        broker_url=REDIS_URL,
        secret_key=secrets.token_urlsafe(32),
        generator="preview",
        **overrides,
    )
    try:
        migrate(settings)
        yield settings
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def factory_for(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _ids(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
    return list(session.scalars(stmt, rows))


def seed_accounts(session: Session, count: int, prefix: str) -> list[tuple[int, int]]:
    """``count`` influencers with one character each; returns (influencer id, character id)."""
    people = _ids(
        session,
        Influencer,
        [
            {"handle": f"{prefix}{i:05d}", "display_name": f"B{i}", "timezone": ZONES[i % 5]}
            for i in range(count)
        ],
    )
    faces = _ids(
        session,
        Character,
        [{"influencer_id": pid, "name": "Face", "seed": pid} for pid in people],
    )
    return list(zip(people, faces, strict=True))


def seed_calendars(session: Session, accounts: list[tuple[int, int]]) -> dict[str, int]:
    """One calendar each, 3 posts a day: 3 in 4 simple rules, 1 in 4 an RRULE; half with
    caption templates (filled per slot at planning time)."""
    calendars = _ids(
        session,
        ContentCalendar,
        [{"influencer_id": p, "character_id": c, "name": "main"} for p, c in accounts],
    )
    rules = [_rule(i, cal) for i, cal in enumerate(calendars)]
    session.execute(insert(SlotRule), rules)
    return {
        "rrule_rules": sum(1 for r in rules if r["rrule"]),
        "with_caption_templates": sum(1 for r in rules if r["caption_templates"]),
    }


def _rule(i: int, calendar_id: int) -> dict[str, Any]:
    rrule = i % 4 == 3
    return {
        "calendar_id": calendar_id,
        "days_of_week": [] if rrule else [1, 2, 3, 4, 5, 6, 7],
        "times": [] if rrule else TIMES,
        "rrule": "FREQ=DAILY;BYHOUR=9,13,19;BYMINUTE=0" if rrule else None,
        "dtstart": "2026-11-01T00:00" if rrule else None,
        "scenes": SCENES,
        "environments": ENVIRONMENTS,
        "outfits": [],
        "caption_text": "",
        "caption_templates": ["{day} {scene} in the {environment}"] if i % 2 else [],
        "hashtags": ["bench"],
    }


# --- expansion --------------------------------------------------------------------------------


def expand_like_the_beat(
    factory: sessionmaker[Session], now: datetime, batch: int
) -> tuple[float, list[float], int]:
    """Expand every due calendar in beat-sized transactions; (total s, per batch s, posts)."""
    per_batch: list[float] = []
    created = 0
    started = time.perf_counter()
    while _due_calendars(factory, now):
        t0 = time.perf_counter()
        with session_scope(factory) as session:
            created += expand_due_calendars(session, now=now, horizon_days=14, limit=batch)
        per_batch.append(time.perf_counter() - t0)
    return time.perf_counter() - started, per_batch, created


def _due_calendars(factory: sessionmaker[Session], now: datetime) -> int:
    with factory() as session:
        due = or_(ContentCalendar.expand_at.is_(None), ContentCalendar.expand_at <= now)
        return int(session.scalar(select(func.count()).where(due)) or 0)


def repeat_expansion(factory: sessionmaker[Session], now: datetime) -> tuple[float, int]:
    """Plan every calendar again from scratch while all its posts exist: the idempotent path."""
    with session_scope(factory) as session:
        session.execute(update(ContentCalendar).values(planned_until=None, expand_at=None))
    started = time.perf_counter()
    with session_scope(factory) as session:
        created = expand_due_calendars(session, now=now, horizon_days=14)
    return time.perf_counter() - started, created


# --- one tick ---------------------------------------------------------------------------------


def make_due(
    factory: sessionmaker[Session], accounts: list[tuple[int, int]], now: datetime
) -> list[int]:
    rows = [
        {
            "influencer_id": p,
            "character_id": c,
            "publish_at": now + timedelta(minutes=20),
            "generate_at": now - timedelta(seconds=1),
            "local_publish_time": "bench",
        }
        for p, c in accounts
    ]
    with session_scope(factory) as session:
        return _ids(session, Post, rows)


def _reset(
    factory: sessionmaker[Session], ids: list[int], status: PostStatus, **values: Any
) -> None:
    with session_scope(factory) as session:
        session.execute(delete(PostEvent).where(PostEvent.post_id.in_(ids)))
        session.execute(
            update(Post)
            .where(Post.id.in_(ids))
            .values(status=status, lease_owner=None, lease_expires_at=None, **values)
        )


def time_ticks(
    factory: sessionmaker[Session],
    settings: Settings,
    now: datetime,
    runs: int,
    prepare: Callable[[], None],
) -> dict[str, Any]:
    """Median tick (one transaction, committed) and median send of what it claimed to Redis."""
    app = create_app(settings)
    ticks, sends, claimed = [], [], []
    for _ in range(runs):
        prepare()
        redis.Redis.from_url(REDIS_URL).flushdb()
        t0 = time.perf_counter()
        with session_scope(factory) as session:
            report = tick(session, settings=settings, now=now)
        t1 = time.perf_counter()
        send_dispatches(report.dispatches, app)
        ticks.append((t1 - t0) * 1000)
        sends.append((time.perf_counter() - t1) * 1000)
        claimed.append(len(report.dispatches))
    return {
        "tick_ms_median": round(statistics.median(ticks), 1),
        "tick_ms_all": [round(t, 1) for t in ticks],
        "send_ms_median": round(statistics.median(sends), 1),
        "claimed": claimed[0],
    }


def bench_tick(
    factory: sessionmaker[Session],
    settings: Settings,
    accounts: list[tuple[int, int]],
    now: datetime,
    runs: int,
) -> dict[str, Any]:
    """Claims of 1,000 due posts, first right after the bulk load (no planner statistics
    yet), then after ANALYZE, which autovacuum runs within a minute or so of such a load."""
    ids = make_due(factory, accounts, now)
    replan = lambda: _reset(factory, ids, S.PLANNED, generation=0)  # noqa: E731
    cold = time_ticks(factory, settings, now, runs, replan)
    with session_scope(factory) as session:
        session.execute(text("ANALYZE"))
    generate = time_ticks(factory, settings, now, runs, replan)
    soon = now + timedelta(seconds=60)
    publish = time_ticks(
        factory, settings, now, runs, lambda: _reset(factory, ids, S.READY, publish_at=soon)
    )
    return {"due": len(ids), "generate_no_stats": cold, "generate": generate, "publish": publish}


# --- through real workers ---------------------------------------------------------------------


class Fleet:
    """Real ``ryla`` worker and beat processes, logs under one folder."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.env = {
            **os.environ,
            "RYLA_DATABASE_URL": settings.database_url,
            "RYLA_BROKER_URL": settings.broker_url,
            "RYLA_DATA_DIR": str(settings.data_dir),
            "RYLA_SECRET_KEY": settings.secret_key,
            "RYLA_GENERATOR": "preview",
            "RYLA_TICK_SECONDS": str(settings.tick_seconds),
        }
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, ready: str | None = " ready.") -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{'-'.join(args[:3]).replace(',', '_')}.log"
        with log.open("wb") as out:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "admin", *args],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 60
        while ready and ready not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or self.procs[-1].poll() is not None:
                raise RuntimeError(f"{log.name} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _e2e_posts(
    factory: sessionmaker[Session], count: int, at: datetime, lead: timedelta
) -> list[int]:
    with session_scope(factory) as session:
        accounts = seed_accounts(session, max(1, count // 10), "e2e")
    rows = [
        {
            "influencer_id": accounts[i % len(accounts)][0],
            "character_id": accounts[i % len(accounts)][1],
            "publish_at": at,
            "generate_at": at - lead,
            "local_publish_time": f"{at:%Y-%m-%d %H:%M} UTC",
            "scene": SCENES[i % 4],
            "caption_text": f"post {i}",
        }
        for i in range(count)
    ]
    with session_scope(factory) as session:
        return _ids(session, Post, rows)


def _wait_done(factory: sessionmaker[Session], ids: list[int], until: datetime) -> None:
    done = {S.PUBLISHED, S.MISSED, S.FAILED, S.UNKNOWN, S.CANCELLED}
    while datetime.now(UTC) < until:
        with factory() as session:
            open_ = session.scalar(
                select(func.count()).where(Post.id.in_(ids), Post.status.not_in(done))
            )
        if open_ == 0:
            return
        time.sleep(1)


def _e2e_report(factory: sessionmaker[Session], ids: list[int], at: datetime) -> dict[str, Any]:
    with factory() as session:
        rows = session.execute(select(Post.status, Post.published_at).where(Post.id.in_(ids))).all()
        last_ready = session.scalar(
            select(func.max(PostEvent.at)).where(
                PostEvent.post_id.in_(ids), PostEvent.to_status == S.READY
            )
        )
    late = sorted((p - at).total_seconds() for s, p in rows if s is S.PUBLISHED and p)
    counts: dict[str, int] = {}
    for status, _ in rows:
        counts[status.value] = counts.get(status.value, 0) + 1
    pick = (lambda q: round(late[min(len(late) - 1, int(q * len(late)))], 2)) if late else None
    return {
        "posts": len(ids),
        "statuses": counts,
        "late_s": {
            q: pick(p) if pick else None
            for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
        "all_ready_before_s": round((at - last_ready).total_seconds(), 1) if last_ready else None,
    }


def bench_e2e(count: int, lead_minutes: float, io_procs: int, cpu_procs: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="ryla-bench-") as tmp,
        fresh_settings(Path(tmp) / "data", tick_seconds=5) as settings,
        factory_for(settings) as factory,
    ):
        redis.Redis.from_url(REDIS_URL).flushdb()
        lead = timedelta(minutes=lead_minutes)
        at = (datetime.now(UTC) + lead + timedelta(seconds=30)).replace(second=0, microsecond=0)
        at += timedelta(minutes=1)
        ids = _e2e_posts(factory, count, at, lead)
        fleet = Fleet(settings, Path(tmp) / "logs")
        try:
            fleet.start("worker", "--queues", "gpu", "--concurrency", "1", "--name", "gpu")
            fleet.start(
                "worker", "--queues", "cpu", "--concurrency", str(cpu_procs), "--name", "cpu"
            )
            fleet.start("worker", "--queues", "io", "--concurrency", str(io_procs), "--name", "io")
            fleet.start("beat", ready=None)
            _wait_done(factory, ids, at + timedelta(minutes=3))
        finally:
            fleet.stop()
        report = _e2e_report(factory, ids, at)
    redis.Redis.from_url(REDIS_URL).flushdb()
    return {
        **report,
        "lead_minutes": lead_minutes,
        "io_processes": io_procs,
        "cpu_processes": cpu_procs,
    }


# --- the run ----------------------------------------------------------------------------------


def bench_planning(args: argparse.Namespace) -> dict[str, Any]:
    """Expansion of N calendars and the 1,000-due tick, in one database of N accounts."""
    now = datetime.now(UTC).replace(minute=10, second=0, microsecond=0)
    with (
        tempfile.TemporaryDirectory(prefix="ryla-bench-") as tmp,
        fresh_settings(
            Path(tmp) / "data", claim_batch=max(args.due, 200), expand_batch=args.expand_batch
        ) as settings,
        factory_for(settings) as factory,
    ):
        with session_scope(factory) as session:
            accounts = seed_accounts(session, args.influencers, "bench")
            mix = seed_calendars(session, accounts)
        total, batches, created = expand_like_the_beat(factory, now, args.expand_batch)
        hour = now + timedelta(hours=1)  # every calendar is due again: one more hour each
        extend, extend_batches, extended = expand_like_the_beat(factory, hour, args.expand_batch)
        again, duplicates = repeat_expansion(factory, now)
        ticks = bench_tick(factory, settings, accounts[: args.due], now, args.tick_runs)
    return {
        "expansion": {
            "calendars": args.influencers,
            **mix,
            "posts_created": created,
            "total_s": round(total, 2),
            "batch_calendars": args.expand_batch,
            "batch_s_median": round(statistics.median(batches), 3),
            "batch_s_max": round(max(batches), 3),
            "posts_per_s": round(created / total),
            "extend_one_hour_s": round(extend, 2),
            "extend_batch_s_median": round(statistics.median(extend_batches), 3),
            "extend_posts_created": extended,
            "repeat_all_existing_s": round(again, 2),
            "repeat_created": duplicates,
        },
        "tick": ticks,
    }


def print_table(result: dict[str, Any]) -> None:
    ex, tk, e2e = result["expansion"], result["tick"], result.get("e2e")
    rows = [
        (
            f"expand {ex['calendars']:,} calendars x 14 days ({ex['posts_created']:,} posts)",
            f"{ex['total_s']:.1f} s ({ex['posts_per_s']:,}/s)",
            "-",
        ),
        (
            f"  one beat tick's share ({ex['batch_calendars']} calendars)",
            f"{ex['batch_s_median'] * 1000:.0f} ms median, {ex['batch_s_max'] * 1000:.0f} max",
            "-",
        ),
        (
            f"  an hour later: extend all by one hour ({ex['extend_posts_created']:,} posts)",
            f"{ex['extend_one_hour_s']:.1f} s, "
            f"{ex['extend_batch_s_median'] * 1000:.0f} ms per {ex['batch_calendars']}",
            "-",
        ),
        ("  plan all again, every slot exists", f"{ex['repeat_all_existing_s']:.1f} s", "0 new"),
        (
            f"tick, {tk['due']:,} due for generation (DB, committed)",
            f"{tk['generate']['tick_ms_median']:.0f} ms",
            "<= 200 ms",
        ),
        ("  + sending them to Redis", f"{tk['generate']['send_ms_median']:.0f} ms", "-"),
        (
            "  the same before the first ANALYZE (fresh bulk load)",
            f"{tk['generate_no_stats']['tick_ms_median']:.0f} ms",
            "-",
        ),
        (
            f"tick, {tk['due']:,} due for publishing (DB, committed)",
            f"{tk['publish']['tick_ms_median']:.0f} ms",
            "<= 200 ms",
        ),
        ("  + sending them to Redis", f"{tk['publish']['send_ms_median']:.0f} ms", "-"),
    ]
    if e2e:
        late = e2e["late_s"]
        rows.append(
            (
                f"{e2e['posts']} posts at one minute, published late by",
                f"p50 {late['p50']} s, p99 {late['p99']} s, max {late['max']} s",
                "p99 <= 5 s",
            )
        )
        rows.append(
            ("  all rendered before their time by", f"{e2e['all_ready_before_s']} s", "> 0")
        )
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<40}  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--influencers", type=int, default=10_000)
    parser.add_argument("--expand-batch", type=int, default=500)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--tick-runs", type=int, default=7)
    parser.add_argument("--e2e-posts", type=int, default=500)
    parser.add_argument("--lead-minutes", type=float, default=4.0)
    parser.add_argument("--io-processes", type=int, default=4)
    parser.add_argument("--cpu-processes", type=int, default=2)
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        **bench_planning(args),
    }
    if not args.skip_e2e:
        result["e2e"] = bench_e2e(
            args.e2e_posts, args.lead_minutes, args.io_processes, args.cpu_processes
        )
    print_table(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
