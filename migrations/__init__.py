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
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from pipeline.settings import Settings

__all__ = ["alembic_config", "migrate", "schema_problem"]


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["database_url"] = database_url
    return config


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
