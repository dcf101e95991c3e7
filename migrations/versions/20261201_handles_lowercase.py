"""influencer handles stored lower-case: Instagram's ignore case, so ``Mia`` and ``mia`` are
one account; lookups lower-case what they are given

Handles an older ryla stored with capitals are lower-cased, unless that would clash with an
influencer already holding the lower-case handle (two rows for one account: a person merges
them; the capitalised one stays reachable by ``ryla status`` listing until then).

Revision ID: handles_lowercase
Revises: preview_only_i10
Create Date: 2026-12-01 04:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "handles_lowercase"
down_revision: str | None = "preview_only_i10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per account is lower-cased (the oldest), and none whose lower-case handle is
    # taken already.
    op.execute(
        "UPDATE influencers SET handle = lower(handle) "
        "WHERE handle <> lower(handle) "
        "AND lower(handle) NOT IN (SELECT i.handle FROM influencers i) "
        "AND id = (SELECT min(j.id) FROM influencers j "
        "WHERE lower(j.handle) = lower(influencers.handle))"
    )


def downgrade() -> None:
    """Nothing to undo: the capitals were not kept."""
