"""Alembic environment: the URL comes from settings (or the caller), the metadata from models.

SQLite runs in batch mode so ALTERs work there too.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import engine_from_config, pool

import models
from pipeline.settings import get_settings

config = context.config
# `ryla init` passes the URL; the alembic command line reads it from the environment (a
# migration needs no other setting, so no secret key is asked for here).
url = (
    config.attributes.get("database_url")
    or os.environ.get("RYLA_DATABASE_URL")
    or get_settings().database_url
)
target_metadata = models.Base.metadata


def run_offline() -> None:
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
