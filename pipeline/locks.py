"""The single-beat lock: a PostgreSQL advisory lock, or a file lock beside the SQLite file.

Held for the life of the beat process; a second beat waits on standby instead of ticking too.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from pipeline.settings import Settings

__all__ = ["BEAT_LOCK_KEY", "LockCheck", "beat_lock"]

BEAT_LOCK_KEY = 0x52594C41  # "RYLA"

# Yields a check that says whether the lock is still held, or None when another beat has it.
LockCheck = Callable[[], bool]


@contextmanager
def beat_lock(settings: Settings, engine: Engine) -> Iterator[LockCheck | None]:
    if settings.is_sqlite:
        with _file_lock(settings) as held:
            yield (lambda: True) if held else None
        return
    # Autocommit: an idle transaction held for days would stop VACUUM on the busiest tables.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": BEAT_LOCK_KEY}):
            yield None
            return

        def still_held() -> bool:
            # A dropped connection releases the lock: the caller must stop ticking then.
            try:
                return bool(
                    conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND objid = :k AND pid = pg_backend_pid() AND granted"
                        ),
                        {"k": BEAT_LOCK_KEY},
                    )
                )
            except Exception:
                return False

        try:
            yield still_held
        finally:
            if still_held():
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
