"""Inserting planned slots: each slot key once, one post per influencer per instant, in bulk.

A row that clashes with either unique index is skipped (ON CONFLICT DO NOTHING without a
target), so a second rule with the same instants, or a one-off already there, wins nothing.

PostgreSQL gets one JSON record set per few thousand rows; SQLite a plain multi-row insert.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, Text, bindparam, cast, column, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from models import Post

__all__ = ["insert_slots"]


def insert_slots(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows whose slot key and instant are free; return how many were created."""
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        return _insert_slots_json(session, rows)
    stmt = sqlite_insert(Post).on_conflict_do_nothing().returning(Post.id)
    return len(list(session.scalars(stmt, list(rows))))


# The columns a slot row sets, with their types inside the JSON record set.
_SLOT_COLUMNS: dict[str, TypeEngine[Any]] = {
    "influencer_id": Integer(),
    "character_id": Integer(),
    "calendar_id": Integer(),
    "slot_key": Text(),
    "publish_at": DateTime(timezone=True),
    "generate_at": DateTime(timezone=True),
    "local_publish_time": Text(),
    "scene": Text(),
    "environment": Text(),
    "outfit": Text(),
    "caption_text": Text(),
    "hashtags": JSONB(),
    "formats": JSONB(),
}
_RECORDS_CHUNK = 5000


def _insert_slots_json(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """One INSERT … SELECT FROM jsonb_to_recordset(:rows) per chunk: a single JSON parameter.

    A multi-row VALUES list costs the driver more (parsing ~14 placeholders a row) than the
    database; one JSON text, made by the C json encoder, keeps the statement small.
    """
    names = list(_SLOT_COLUMNS)
    records = func.jsonb_to_recordset(cast(bindparam("rows", type_=Text), JSONB))
    table = records.table_valued(*(column(n, t) for n, t in _SLOT_COLUMNS.items()))
    stmt = (
        pg_insert(Post)
        .from_select(names, select(*table.render_derived(with_types=True).c))
        .on_conflict_do_nothing()
        .returning(Post.id)
    )
    created = 0
    for first in range(0, len(rows), _RECORDS_CHUNK):
        chunk = json.dumps(rows[first : first + _RECORDS_CHUNK], default=datetime.isoformat)
        created += len(session.connection().scalars(stmt, {"rows": chunk}).all())
    return created
