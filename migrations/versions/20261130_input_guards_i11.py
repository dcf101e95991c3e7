"""input guards: one post per instant, broken calendars, RRULE anchors, a daily cap

Revision ID: input_guards_i11
Revises: 1698f0ba8f92
Create Date: 2026-11-30 19:30:00

Before the unique index is made, posts that already share an influencer and an instant (two
rules with the same slots could plan them) are reduced to one: the one furthest along stays,
the others are cancelled with an audit row saying why.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "input_guards_i11"
down_revision: str | None = "1698f0ba8f92"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_PER_INSTANT = "status NOT IN ('cancelled', 'published')"
# Which duplicate stays: those that cannot be cancelled (a publish may be out), then the one
# furthest along; the lowest id breaks a tie.
_KEEP_ORDER = {
    "publishing": 0,
    "unknown": 0,
    "approved": 1,
    "awaiting_approval": 2,
    "ready": 3,
    "rendering": 4,
    "generated": 5,
    "generating": 6,
    "planned": 7,
    "failed": 8,
    "missed": 9,
}

_posts = sa.table(
    "posts",
    sa.column("id", sa.Integer),
    sa.column("influencer_id", sa.Integer),
    sa.column("publish_at", models.base.UTCDateTime()),
    sa.column("status", sa.String),
    sa.column("slot_key", sa.String),
    sa.column("lease_owner", sa.String),
    sa.column("lease_expires_at", models.base.UTCDateTime()),
    sa.column("last_error", sa.Text),
)
_events = sa.table(
    "post_events",
    sa.column("post_id", sa.Integer),
    sa.column("from_status", sa.String),
    sa.column("to_status", sa.String),
    sa.column("at", models.base.UTCDateTime()),
    sa.column("actor", sa.String),
    sa.column("detail", sa.Text),
)


def _duplicates(conn: sa.Connection) -> list[list[tuple[int, str]]]:
    """Groups of (id, status) of live posts sharing an influencer and an instant."""
    live = _posts.c.status.not_in(["cancelled", "published"])
    groups = (
        sa.select(_posts.c.influencer_id, _posts.c.publish_at)
        .where(live)
        .group_by(_posts.c.influencer_id, _posts.c.publish_at)
        .having(sa.func.count() > 1)
        .subquery()
    )
    rows = conn.execute(
        sa.select(_posts.c.id, _posts.c.status, _posts.c.influencer_id, _posts.c.publish_at)
        .join(
            groups,
            sa.and_(
                groups.c.influencer_id == _posts.c.influencer_id,
                groups.c.publish_at == _posts.c.publish_at,
            ),
        )
        .where(live)
        .order_by(_posts.c.influencer_id, _posts.c.publish_at, _posts.c.id)
    )
    found: dict[tuple[int, object], list[tuple[int, str]]] = {}
    for post_id, status, influencer_id, publish_at in rows:
        found.setdefault((influencer_id, publish_at), []).append((post_id, status))
    return list(found.values())


def _cancel_duplicates(conn: sa.Connection) -> None:
    now = datetime.now(UTC)
    for group in _duplicates(conn):
        ranked = sorted(group, key=lambda row: (_KEEP_ORDER.get(row[1], 10), row[0]))
        stuck = [post_id for post_id, status in ranked if _KEEP_ORDER.get(status) == 0]
        if len(stuck) > 1:
            raise RuntimeError(
                f"posts {', '.join(map(str, stuck))} share one instant and may each be out: "
                "settle them with `ryla post resolve` (or let them finish), then run `ryla init`"
            )
        keep = ranked[0][0]
        for post_id, status in ranked[1:]:
            detail = f"duplicate of post {keep} at the same instant (one post per instant)"
            conn.execute(
                sa.update(_posts)
                .where(_posts.c.id == post_id)
                .values(
                    status="cancelled",
                    slot_key=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error=detail,
                )
            )
            conn.execute(
                sa.insert(_events).values(
                    post_id=post_id,
                    from_status=status,
                    to_status="cancelled",
                    at=now,
                    actor="migration",
                    detail=detail,
                )
            )


def upgrade() -> None:
    _cancel_duplicates(op.get_bind())
    with op.batch_alter_table("influencers") as batch:
        batch.add_column(sa.Column("max_posts_per_day", sa.Integer(), nullable=True))
    with op.batch_alter_table("content_calendars") as batch:
        batch.add_column(sa.Column("broken_reason", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("broken_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("slot_rules") as batch:
        batch.add_column(sa.Column("anchor_at", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("anchor_n", sa.Integer(), nullable=True))
    op.create_index(
        "uq_posts_influencer_instant",
        "posts",
        ["influencer_id", "publish_at"],
        unique=True,
        postgresql_where=sa.text(ONE_PER_INSTANT),
        sqlite_where=sa.text(ONE_PER_INSTANT),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_posts_influencer_instant",
        table_name="posts",
        postgresql_where=sa.text(ONE_PER_INSTANT),
        sqlite_where=sa.text(ONE_PER_INSTANT),
    )
    with op.batch_alter_table("slot_rules") as batch:
        batch.drop_column("anchor_n")
        batch.drop_column("anchor_at")
    with op.batch_alter_table("content_calendars") as batch:
        batch.drop_column("broken_at")
        batch.drop_column("broken_reason")
    with op.batch_alter_table("influencers") as batch:
        batch.drop_column("max_posts_per_day")
