"""State moves: every move is one conditional UPDATE plus an audit row.

A move that finds the post in another state changes nothing; that is what makes duplicate
Celery deliveries harmless. The allowed moves themselves live beside ``models.Post``.
A step's own moves are lease-fenced: only the run holding the post's lease can move it out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, insert, true, update
from sqlalchemy.orm import Session

from models import IN_PROGRESS, Post, PostEvent, PostStatus, can_move
from pipeline.errors import InvalidTransition

__all__ = [
    "RUN_PREFIX",
    "STEP_STATUS",
    "Step",
    "move",
    "move_many",
    "new_token",
    "release_lease",
    "return_moves",
    "stable_state_of",
    "take_lease",
]


S = PostStatus


class Step(StrEnum):
    GENERATE = "generate"
    RENDER = "render"
    PUBLISH = "publish"


# The in-progress state a step runs in, and the state it is claimed from.
STEP_STATUS: dict[Step, PostStatus] = {
    Step.GENERATE: S.GENERATING,
    Step.RENDER: S.RENDERING,
    Step.PUBLISH: S.PUBLISHING,
}


def move_many(
    session: Session,
    ids: Sequence[int],
    *,
    expected: PostStatus | Sequence[PostStatus],
    to: PostStatus,
    actor: str,
    detail: str = "",
    where: ColumnElement[bool] | None = None,
    values: dict[str, Any] | None = None,
) -> list[int]:
    """Move the posts still in ``expected`` to ``to``; return the ids that moved."""
    sources = [expected] if isinstance(expected, PostStatus) else list(expected)
    for src in sources:
        if not can_move(src, to):
            raise InvalidTransition(f"{src} -> {to} is not a legal post move")
    moved: list[int] = []
    for src in sources:  # one UPDATE per source state, so each audit row names its real origin
        moved += _move_from(session, ids, src, to, actor, detail, where, values or {})
    return moved


def _move_from(
    session: Session,
    ids: Sequence[int],
    src: PostStatus,
    to: PostStatus,
    actor: str,
    detail: str,
    where: ColumnElement[bool] | None,
    values: dict[str, Any],
) -> list[int]:
    if not ids:
        return []
    conditions = [Post.id.in_(ids), Post.status == src]
    if where is not None:
        conditions.append(where)
    stmt = (
        update(Post)
        .where(*conditions)
        .values(status=to, **values)
        .returning(Post.id)
        .execution_options(synchronize_session=False)
    )
    moved = list(session.scalars(stmt))
    if moved:
        events = [
            {"post_id": pid, "from_status": src, "to_status": to, "actor": actor, "detail": detail}
            for pid in moved
        ]
        session.execute(insert(PostEvent), events)
    return moved


def move(session: Session, post_id: int, **kwargs: Any) -> bool:
    return bool(move_many(session, [post_id], **kwargs))


def new_token() -> str:
    return uuid.uuid4().hex


# A worker's run holds a lease named "run-…"; a bare token is a claim no worker has started.
RUN_PREFIX = "run-"


def take_lease(
    session: Session, post_id: int, *, step: Step, token: str, now: datetime, lease_seconds: int
) -> str | None:
    """A worker swaps the dispatch token for its own run id; a second delivery then finds none."""
    run_id = f"{RUN_PREFIX}{new_token()}"
    stmt = (
        update(Post)
        .where(Post.id == post_id, Post.status == STEP_STATUS[step], Post.lease_owner == token)
        .values(lease_owner=run_id, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return run_id if session.execute(stmt).rowcount == 1 else None  # type: ignore[attr-defined]


def release_lease(
    session: Session,
    post_id: int,
    *,
    step: Step,
    run_id: str,
    to: PostStatus,
    actor: str,
    detail: str = "",
    values: dict[str, Any] | None = None,
) -> bool:
    """Finish a step: move out of its in-progress state, only if this run still holds the lease."""
    return move(
        session,
        post_id,
        expected=STEP_STATUS[step],
        to=to,
        actor=actor,
        detail=detail,
        where=Post.lease_owner == run_id,
        values={"lease_owner": None, "lease_expires_at": None, **(values or {})},
    )


def return_moves() -> list[tuple[PostStatus, PostStatus, ColumnElement[bool]]]:
    """(in-progress state, the stable state it returns to, for which rows): publishing splits
    on approval. Shared by the reconciler and by pauses that take back unstarted claims."""
    return [
        (S.GENERATING, S.PLANNED, true()),
        (S.RENDERING, S.GENERATED, true()),
        (S.PUBLISHING, S.READY, Post.approved_at.is_(None)),
        (S.PUBLISHING, S.APPROVED, Post.approved_at.is_not(None)),
    ]


def stable_state_of(post_status: PostStatus, approved: bool) -> PostStatus:
    """Where an in-progress post returns to when its lease ends without success."""
    back = IN_PROGRESS[post_status]
    return S.APPROVED if post_status is S.PUBLISHING and approved else back
