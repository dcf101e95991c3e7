"""What every CLI command shares: settings, a session factory, the Celery app, one error type.

Bad input becomes ``BadInput``: one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any

import click
from celery import Celery
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.health import HealthCheck, probe_database
from pipeline.settings import Settings, get_settings

__all__ = [
    "ROW_ID",
    "BadInput",
    "CliContext",
    "given_values",
    "settings_error_line",
    "split_values",
    "usage_line",
]


class BadInput(click.ClickException):
    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def usage_line(exc: click.UsageError) -> str:
    """Click's usage error as one line: what was wrong and where the help is."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = message[:1].lower() + message[1:]
    path = exc.ctx.command_path if exc.ctx is not None else "ryla"
    return f"{message}: see `{path} --help`"


def settings_error_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:  # a check across settings: its message names them; the input holds all
        return f"settings: {message}"  # of them, secrets too, so it is never echoed
    name = "RYLA_" + "_".join(str(p) for p in first["loc"]).upper()
    shown = "" if name == "RYLA_SECRET_KEY" else f" (got {first.get('input')!r})"
    return f"setting {name}: {message}{shown}"


@dataclass
class CliContext:
    actor: str = "cli"
    verbose: bool = False
    _engine: Engine | None = field(default=None, init=False)

    def log_progress(self) -> None:
        """Long-running commands log what they do; one-shot commands stay quiet."""
        if not self.verbose:
            logging.getLogger().setLevel(logging.INFO)
            logging.getLogger("alembic").setLevel(logging.WARNING)

    @cached_property
    def settings(self) -> Settings:
        try:
            return get_settings()
        except ValidationError as exc:
            raise BadInput(settings_error_line(exc)) from None

    @cached_property
    def engine(self) -> Engine:
        self._engine = make_engine(self.settings)
        return self._engine

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        self.require_schema()
        return make_session_factory(self.engine)

    def require_schema(self) -> None:
        """Before ``ryla init`` (or after an upgrade that needs it), say so and touch nothing."""
        from migrations import schema_problem

        problem = schema_problem(self.settings)
        if problem is not None:
            raise BadInput(problem)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.session_factory) as session:
            yield session

    @cached_property
    def app(self) -> Celery:
        from tasks.app import create_app

        return create_app(self.settings)

    def health_check(self, *, announce: bool = False) -> HealthCheck:
        """Probes of the database and the broker; ``announce`` logs each going and coming back
        (long-running servers), else they are only reported."""
        from tasks.broker import probe_broker

        probes = {"database": probe_database(self.engine), "broker": probe_broker(self.app)}
        return HealthCheck(probes) if announce else HealthCheck(probes, logger=None)

    def require_broker(self) -> None:
        """Fail before writing anything when the broker cannot take the message."""
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=5)
        except Exception as exc:  # kombu raises a zoo of transport errors
            raise BadInput(
                f"the broker at {self.app.conf.broker_url.split('@')[-1]} is unreachable "
                f"({type(exc).__name__}): start it or check RYLA_BROKER_URL; nothing was changed"
            ) from None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def split_values(values: tuple[str, ...]) -> list[str]:
    """A list option's items: ``--scene a,b`` and ``--scene a --scene b`` mean the same."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def given_values(values: tuple[str, ...], *, split: bool = True) -> list[str] | None:
    """None when a list option was not given; otherwise its items (possibly none: an error later).

    ``split=False`` keeps each value whole (outfits and caption templates may hold commas).
    """
    if not values:
        return None
    if not split:
        return list(values)
    return [part.strip() for value in values for part in value.split(",")]


# A row id as the databases store it (a 32-bit integer): larger ones are refused by Click, in
# one line, instead of overflowing inside the database driver.
ROW_ID = click.IntRange(1, 2**31 - 1)
