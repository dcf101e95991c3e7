"""Alembic migrations for PostgreSQL and SQLite; ``migrate()`` runs them from code, and
``schema_problem()`` says (without creating anything) when a database needs ``ryla init``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import NullPool

from pipeline.health import database_unreachable
from pipeline.settings import Settings

__all__ = ["alembic_config", "database_problem", "migrate", "schema_problem"]


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["database_url"] = database_url
    return config


# SQLite's words for a file that is not (or no longer) a database it can read.
_DAMAGED = ("file is not a database", "malformed", "not a database")


def database_problem(exc: DatabaseError, shown: str = "") -> str | None:
    """One line for a database that cannot be used at all (away, or a damaged file), saying
    what to do; None for anything else (a query refused: a bug, shown as one)."""
    first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc).__name__
    where = f" at {shown}" if shown else ""
    if database_unreachable(exc):
        return f"the database{where} is unreachable ({first}): start it or check RYLA_DATABASE_URL"
    if any(words in first.lower() for words in _DAMAGED):
        return (
            f"the database{where} cannot be read ({first}): the file is damaged or not a RYLA "
            "database; restore it from a backup, or point --data-dir / RYLA_DATABASE_URL elsewhere"
        )
    return None


def migrate(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision``; the embedded default's folder is created first."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), revision)


def schema_problem(settings: Settings) -> str | None:
    """Why the database cannot be used yet, as one line saying what to run; None when it can.

    Nothing is created on the way: SQLite would make an empty file on connect, so a missing
    file is reported before any connection.
    """
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    on_disk = settings.is_sqlite and url.database not in (None, "", ":memory:")
    if on_disk and not Path(str(url.database)).is_file():
        return f"no database at {url.database} yet: run `ryla init` first"
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except OperationalError as exc:
        reason = type(exc.orig).__name__ if exc.orig is not None else "OperationalError"
        return (
            f"the database at {shown} is unreachable ({reason}): "
            "start it or check RYLA_DATABASE_URL"
        )
    except DatabaseError as exc:
        problem = database_problem(exc, shown)
        if problem is None:
            raise
        return problem
    finally:
        engine.dispose()
    script = ScriptDirectory.from_config(alembic_config(settings.database_url))
    heads = set(script.get_heads())
    if not current:
        return f"the database at {shown} has no RYLA tables yet: run `ryla init` first"
    if current == heads:
        return None
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            return (
                f"the database at {shown} was migrated by a newer ryla (revision {revision}): "
                "upgrade ryla"
            )
    return (
        f"the database at {shown} is at revision {', '.join(sorted(current))}, this ryla needs "
        f"{', '.join(sorted(heads))}: run `ryla init` to migrate it"
    )
