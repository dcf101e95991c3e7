"""The single-beat lock: a PostgreSQL advisory lock, or a file lock beside the SQLite file.

Held for the life of the beat process; a second beat waits on standby instead of ticking too.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from pipeline.settings import Settings

__all__ = ["BEAT_LOCK_KEY", "beat_lock"]

BEAT_LOCK_KEY = 0x52594C41  # "RYLA"


@contextmanager
def beat_lock(settings: Settings, engine: Engine) -> Iterator[bool]:
    """Yield True while this process holds the lock, False if another beat has it."""
    if settings.is_sqlite:
        with _file_lock(settings) as held:
            yield held
        return
    with engine.connect() as conn:
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": BEAT_LOCK_KEY}))
        try:
            yield held
        finally:
            if held:
                _unlock(conn)


def _unlock(conn: Connection) -> None:
    conn.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": BEAT_LOCK_KEY})


@contextmanager
def _file_lock(settings: Settings) -> Iterator[bool]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.data_dir / "beat.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock
