"""Handles ignore case, as Instagram's do: ``Mia`` is stored as ``mia``, found by any casing,
and a second influencer differing only in case is refused; the migration lower-cases handles an
older ryla stored with capitals, unless that would make two rows one."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from migrations import alembic_config
from pipeline.errors import InputError
from pipeline.planning.influencers import InfluencerIn, create_influencer, get_influencer


def _add(session: Session, handle: str) -> str:
    data = InfluencerIn(handle=handle, display_name="Mia", timezone="Europe/Berlin")
    return create_influencer(session=session, data=data).handle


def test_a_handle_is_stored_lower_case_and_found_by_any_casing(session: Session) -> None:
    assert _add(session, "Mia.Travels") == "mia.travels"
    assert get_influencer(session, "MIA.TRAVELS").handle == "mia.travels"
    with pytest.raises(InputError, match=r"influencer 'mia\.travels' already exists"):
        _add(session, "mia.travels")


def test_the_migration_lower_cases_old_handles_without_merging_accounts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "preview_only_i10")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for row_id, handle in enumerate(["Mia", "MIA", "Bob", "bob", "Zed", "lee"], start=1):
            conn.execute(
                sa.text(
                    "INSERT INTO influencers (id, handle, display_name, timezone, persona, voice, "
                    "caption_template, default_hashtags, approval_required, active, created_at) "
                    "VALUES (:id, :handle, 'x', 'UTC', '', '', '', '[]', 0, 1, CURRENT_TIMESTAMP)"
                ),
                {"id": row_id, "handle": handle},
            )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, handle FROM influencers ORDER BY id")).all()
    engine.dispose()
    # Mia (oldest of two) and Zed lower-cased; MIA would clash with mia, Bob with bob.
    assert [tuple(r) for r in rows] == [
        (1, "mia"), (2, "MIA"), (3, "Bob"), (4, "bob"), (5, "zed"), (6, "lee"),
    ]  # fmt: skip
