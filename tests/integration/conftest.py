"""Real services for integration tests: a fresh PostgreSQL database, Redis, worker processes.

Under CI=true a missing PostgreSQL or Redis fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from migrations import migrate
from pipeline.db import make_engine, make_session_factory
from pipeline.settings import Settings
from tasks.app import create_app

PG_ADMIN = os.environ.get("RYLA_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _redis_url() -> str:
    """The Redis database these tests may flush: one per pytest-xdist worker (gw0 → 11, gw1 →
    12 …), so parallel workers never empty each other's queues."""
    url = os.environ.get("RYLA_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    base, _, db = url.rpartition("/")
    return f"{base}/{int(db or 0) + int(worker[2:])}"


REDIS_URL = _redis_url()


def missing(message: str) -> None:
    """Fail under CI=true (where .ci/run provides everything), else skip, saying what is missing."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def service_missing(what: str, exc: Exception) -> None:
    missing(f"{what} is not reachable ({exc}); start it (see .ci/run)")


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    settings: Settings
    factory: sessionmaker[Session]
    app: Celery
    logs: Path


@pytest.fixture(params=["embedded", "postgres_redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    env = {
        "RYLA_DATA_DIR": str(tmp_path / "data"),
        "RYLA_GENERATOR": "preview",
        "RYLA_TICK_SECONDS": "1",
        "RYLA_LEASE_SECONDS": "60",
    }
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if request.param == "postgres_redis":
        db_url, drop = fresh_database()
        env |= {
            "RYLA_DATABASE_URL": db_url,
            "RYLA_BROKER_URL": flushed_redis(),
            "RYLA_SECRET_KEY": secrets.token_urlsafe(32),
        }
    made, engine = open_backend(request.param, env, tmp_path / "logs")
    try:
        yield made
    finally:
        engine.dispose()
        drop()


def settings_of(env: dict[str, str]) -> Settings:
    """The settings a process started with these ``RYLA_*`` variables reads."""
    return Settings(**{k.removeprefix("RYLA_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]


def open_backend(name: str, env: dict[str, str], logs: Path) -> tuple[Backend, Engine]:
    """A migrated database and a Celery app for ``env``; the caller disposes of the engine."""
    settings = settings_of(env)
    migrate(settings)
    engine = make_engine(settings)
    made = Backend(name, env, settings, make_session_factory(engine), create_app(settings), logs)
    return made, engine


def served_env(tmp: Path, db_url: str, broker_url: str, port: int) -> dict[str, str]:
    """What every process of a production-shaped stack reads: PostgreSQL, Redis, media served
    at ``port`` and drawn by the preview generator."""
    return {
        "RYLA_DATA_DIR": str(tmp / "data"),
        "RYLA_DATABASE_URL": db_url,
        "RYLA_BROKER_URL": broker_url,
        "RYLA_SECRET_KEY": secrets.token_urlsafe(32),
        "RYLA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "RYLA_GENERATOR": "preview",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_database() -> tuple[str, Callable[[], None]]:
    name = f"ryla_it_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_missing("PostgreSQL", exc)

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", drop


def flushed_redis() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).flushdb()
    except redis.RedisError as exc:
        service_missing("Redis", exc)
    return REDIS_URL


class Processes:
    """Real ``ryla`` processes (workers, beat) started for one test, stopped after it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, *args: str, ready: str | None = None, timeout: float = 60) -> None:
        self.backend.logs.mkdir(parents=True, exist_ok=True)
        log = self.backend.logs / f"{'-'.join(args).replace(',', '_')}-{len(self.procs)}.log"
        env = {**os.environ, **self.backend.env}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "admin", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append((proc, log))
        if ready:
            self._wait_for(log, proc, ready, timeout)

    def worker(self, queues: str, concurrency: int = 2) -> None:
        self.start(
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--name",
            queues.replace(",", "-"),
            ready=" ready.",
        )

    @staticmethod
    def _wait_for(log: Path, proc: subprocess.Popen[bytes], text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in log.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"{log.name} did not print {text!r}:\n{log.read_text(errors='replace')}")

    def full_logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.procs)

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for _, log in self.procs
        )

    def stop(self) -> None:
        for proc, _ in self.procs:
            proc.terminate()
        for proc, _ in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def processes(backend: Backend) -> Iterator[Processes]:
    procs = Processes(backend)
    try:
        yield procs
    finally:
        procs.stop()
