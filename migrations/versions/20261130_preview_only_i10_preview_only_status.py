"""posts may wait as preview_only: placeholder images held back from Instagram and webhooks

Revision ID: preview_only_i10
Revises: notify_metrics_i13
Create Date: 2026-11-30 10:00:00

The post status columns are VARCHAR + CHECK (``models.base.enum_column``): the new value is
added by replacing the three CHECK constraints (batch mode recreates the tables on SQLite).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "preview_only_i10"
down_revision: str | None = "notify_metrics_i13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = (
    "planned",
    "generating",
    "generated",
    "rendering",
    "ready",
    "awaiting_approval",
    "approved",
    "publishing",
    "published",
    "failed",
    "unknown",
    "missed",
    "cancelled",
)
_AFTER = (*_BEFORE, "preview_only")
# (table, column, the CHECK constraint's name as the naming convention renders it)
_CHECKS = (
    ("posts", "status", "ck_posts_poststatus"),
    ("post_events", "from_status", "ck_post_events_from_status"),
    ("post_events", "to_status", "ck_post_events_to_status"),
)


def _replace_checks(values: tuple[str, ...]) -> None:
    allowed = ", ".join(f"'{v}'" for v in values)
    for table in ("posts", "post_events"):
        with op.batch_alter_table(table, recreate="auto") as batch:
            for owner, column, name in _CHECKS:
                if owner != table:
                    continue
                batch.drop_constraint(op.f(name), type_="check")
                batch.create_check_constraint(op.f(name), f"{column} IN ({allowed})")


def upgrade() -> None:
    _replace_checks(_AFTER)


def downgrade() -> None:
    # A post that waits as preview_only goes back to ready (the older code knows no better);
    # its history keeps the moves, written as to and from ready.
    op.execute("UPDATE posts SET status = 'ready' WHERE status = 'preview_only'")
    for column in ("from_status", "to_status"):
        op.execute(f"UPDATE post_events SET {column} = 'ready' WHERE {column} = 'preview_only'")
    _replace_checks(_BEFORE)
