"""Studio benchmark on PostgreSQL: 10,000 influencers and 400,000 posts, ``ryla serve`` in its own
process, measured over real HTTP on loopback (so each figure includes the HTTP round trip).

- the API's post list, 50 rows per page, filtered (one influencer's planned posts; what needs a
  person; a time window across everyone; the next page by cursor): target p99 <= 50 ms;
- the calendar month page (HTML) of one influencer, and of everyone: target <= 150 ms;
- the approval queue page (40,000 posts need a person): for reference;
- a thumbnail fetched twice: the repeat is a 304 from its validator.

Run ``python benchmarks/api.py`` with PostgreSQL on 127.0.0.1:5432 (user postgres, trust);
prints a table and writes ``benchmarks/results/api.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from admin.access import create_token, create_user
from migrations import migrate
from models import Role, TokenScope
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.media.storage import LocalStorage
from pipeline.settings import Settings
from tests.integration.conftest import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "api.json"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STATES = ["planned"] * 14 + ["published"] * 4 + ["awaiting_approval", "failed"]
PASSWORD = "benchmark-password"


def _copy(
    conn: psycopg.Connection[Any], table: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


INFLUENCER_COLUMNS = [
    "id",
    "handle",
    "display_name",
    "timezone",
    "persona",
    "voice",
    "caption_template",
    "default_hashtags",
    "approval_required",
    "active",
    "created_at",
]
CHARACTER_COLUMNS = [
    "id",
    "influencer_id",
    "name",
    "age",
    "ethnicity",
    "hair",
    "eyes",
    "body",
    "features",
    "default_outfit",
    "identity_prompt",
    "negative_prompt",
    "trigger_word",
    "lora_scale",
    "seed_policy",
    "seed",
    "created_at",
]
POST_COLUMNS = [
    "id",
    "influencer_id",
    "character_id",
    "status",
    "publish_at",
    "generate_at",
    "local_publish_time",
    "attempts",
    "generation",
    "scene",
    "environment",
    "outfit",
    "prompt_extra",
    "prompt",
    "negative_prompt",
    "caption_text",
    "caption",
    "alt_text",
    "hashtags",
    "media_type",
    "image_count",
    "formats",
    "created_at",
    "updated_at",
]
ASSET_COLUMNS = [
    "post_id", "generation", "kind", "format", "storage_key", "content_type", "width",
    "height", "bytes", "sha256", "meta", "created_at",
]  # fmt: skip


def _post_row(pid: int, influencer: int, at: datetime, state: str) -> tuple[Any, ...]:
    local = at.strftime("%Y-%m-%d %H:%M")
    texts = ("city_walk", "urban", "", "", "", "", "caption", "", "")
    return (pid, influencer, influencer, state, at, at - timedelta(minutes=30), local, 0, 1,
            *texts, "[]", "image", 1, '["feed_portrait"]', NOW, NOW)  # fmt: skip


def seed(url: str, storage: LocalStorage, influencers: int, posts_each: int) -> dict[str, Any]:
    """Influencers, characters and posts over 60 days around NOW; a thumbnail per post that
    has images (published, awaiting approval, failed), all rows written by COPY."""
    started = time.perf_counter()
    rng = random.Random(7)
    thumb = storage.put("bench/thumbnail.jpg", b"\xff\xd8\xff" + os.urandom(6000) + b"\xff\xd9")
    ids = range(1, influencers + 1)
    people = [
        (
            i,
            f"inf{i:05d}",
            f"Influencer {i}",
            "Europe/Berlin",
            "",
            "",
            "{text}",
            "[]",
            True,
            True,
            NOW,
        )
        for i in ids
    ]
    faces = [
        (i, i, "main", "", "", "", "", "", "", "", "a person", "", "", 1.0, "fixed", 7, NOW)
        for i in ids
    ]
    post_rows, asset_rows = [], []
    for influencer in ids:
        for n in range(posts_each):
            pid = len(post_rows) + 1
            at = NOW + timedelta(days=-30 + 60 * n / posts_each, minutes=rng.randrange(600))
            state = STATES[rng.randrange(len(STATES))]
            post_rows.append(_post_row(pid, influencer, at, state))
            if state != "planned":
                key = f"bench/t/{pid}.jpg"
                asset_rows.append((pid, 1, "thumbnail", "thumbnail", key, "image/jpeg", 320, 400,
                                   thumb.size, thumb.sha256, "{}", NOW))  # fmt: skip
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        _copy(conn, "influencers", INFLUENCER_COLUMNS, people)
        _copy(conn, "characters", CHARACTER_COLUMNS, faces)
        _copy(conn, "posts", POST_COLUMNS, post_rows)
        _copy(conn, "assets", ASSET_COLUMNS, asset_rows)
        for table in ("influencers", "characters", "posts"):
            conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")  # as autovacuum leaves a table: visibility map set
    # One real file serves the sampled thumbnail keys: hard links keep the disk small.
    for row in asset_rows[:200]:
        target = storage.path(row[4])
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(storage.path("bench/thumbnail.jpg"), target)
    return {
        "posts": len(post_rows),
        "thumbnails": len(asset_rows),
        "sample_post": asset_rows[0][0],
        "seed_s": round(time.perf_counter() - started, 1),
    }


def timed(fn: Callable[[int], httpx.Response], count: int) -> dict[str, float]:
    for i in range(5):  # warm the server's caches and connections
        fn(i)
    samples, server = [], []
    for i in range(count):
        started = time.perf_counter()
        answer = fn(i)
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text[:300]
        server.append(float(answer.headers["server-timing"].split("dur=")[1]))
    samples.sort()
    server.sort()
    return {
        "n": count,
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(0.95 * (count - 1))], 2),
        "p99_ms": round(samples[int(0.99 * (count - 1))], 2),
        "server_median_ms": round(statistics.median(server), 2),
        "server_p99_ms": round(server[int(0.99 * (count - 1))], 2),
    }


def sign_in(client: httpx.Client) -> None:
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token
    data = {"username": "bench", "password": PASSWORD, "login_token": token.group(1)}
    assert client.post("/login", data=data).status_code == 303


def measure(base: str, token: str, influencers: int, count: int, sample: int) -> dict[str, Any]:
    rng = random.Random(11)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    pages = httpx.Client(base_url=base, timeout=60)
    sign_in(pages)

    def handle() -> str:
        return f"inf{rng.randrange(1, influencers + 1):05d}"

    window = {
        "from": (NOW - timedelta(days=2)).isoformat(),
        "to": (NOW + timedelta(days=2)).isoformat(),
    }
    cursor = api.get("/api/v1/posts", params={**window, "limit": 50}).json()["next_cursor"]

    def posts(**params: Any) -> Callable[[int], httpx.Response]:
        return lambda _: api.get("/api/v1/posts", params={"limit": 50, **params})

    def month(**params: Any) -> Callable[[int], httpx.Response]:
        return lambda _: pages.get(
            "/calendar", params={"view": "month", "day": "2026-12-01", **params}
        )

    results = {
        "list: one influencer's planned posts": timed(
            lambda i: posts(handle=handle(), state="planned")(i), count
        ),
        "list: needs a person (all)": timed(posts(needs_person="true"), count),
        "list: 4-day window (all)": timed(posts(**window), count),
        "list: next page by cursor": timed(posts(**window, cursor=cursor), count),
        "page: calendar month, one influencer": timed(
            lambda i: month(handle=handle())(i), count // 2
        ),
        "page: calendar month, all influencers": timed(month(), 20),
        "page: approval queue (all)": timed(lambda _: pages.get("/queue"), 20),
    }
    url = api.get(f"/api/v1/posts/{sample}").json()["thumbnail"]["url"]
    first = httpx.get(url)
    repeat = httpx.get(url, headers={"If-None-Match": first.headers["etag"]})
    results["thumbnail"] = {
        "first": first.status_code,
        "repeat": repeat.status_code,
        "cache_control": first.headers.get("cache-control"),
        "etag": bool(first.headers.get("etag")),
    }
    api.close()
    pages.close()
    return results


def run(influencers: int, posts_each: int, count: int) -> dict[str, Any]:
    name = f"ryla_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    server = None
    try:
        with tempfile.TemporaryDirectory() as folder:
            port = free_port()
            env = {
                "RYLA_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                "RYLA_DATA_DIR": folder,
                "RYLA_SECRET_KEY": secrets.token_urlsafe(32),
                "RYLA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "RYLA_BROKER_URL": "redis://127.0.0.1:6379/12",
            }
            settings = Settings(**{k.removeprefix("RYLA_").lower(): v for k, v in env.items()})
            migrate(settings)
            data = seed(
                settings.database_url, LocalStorage(settings.storage_dir), influencers, posts_each
            )
            engine = make_engine(settings)
            with session_scope(make_session_factory(engine)) as s:
                create_user(session=s, username="bench", password=PASSWORD, role=Role.ADMIN)
                token = create_token(
                    session=s, username="bench", name="bench", scope=TokenScope.READ, now=NOW
                )
            engine.dispose()
            server = subprocess.Popen(
                [sys.executable, "-m", "admin", "serve", "--port", str(port)],
                env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            assert server.stdout is not None
            server.stdout.readline()  # "serving media and the studio on …": it listens
            return {
                **data,
                "results": measure(
                    f"http://127.0.0.1:{port}", token, influencers, count, data["sample_post"]
                ),
            }
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--influencers", type=int, default=10_000)
    parser.add_argument("--posts-each", type=int, default=40)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.influencers, args.posts_each, args.requests)
    print(f"{result['posts']:,} posts, {result['thumbnails']:,} thumbnails ({result['seed_s']} s)")
    print(
        f"{'measure (round trip; server time)':<40} {'n':>5} {'median ms':>10} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'server median':>14} {'server p99':>11}"
    )
    for label, row in result["results"].items():
        if "median_ms" in row:
            cells = (
                f"{row['n']:>5} {row['median_ms']:>10} {row['p95_ms']:>8} {row['p99_ms']:>8} "
                f"{row['server_median_ms']:>14} {row['server_p99_ms']:>11}"
            )
            print(f"{label:<40} {cells}")
    thumb = result["results"]["thumbnail"]
    print(f"thumbnail: first {thumb['first']}, repeat with If-None-Match {thumb['repeat']}, "
          f"Cache-Control {thumb['cache_control']!r}")  # fmt: skip
    load = os.getloadavg()
    result["machine"] = {
        "load_average_1_5_15": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "note": "loopback HTTP, 2 cores shared",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
