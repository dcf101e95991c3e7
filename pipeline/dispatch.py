"""State moves and claims: every move is one conditional UPDATE plus an audit row.

A move that finds the post in another state changes nothing — that is what makes duplicate
Celery deliveries harmless. Claims hand out leases; ``Dispatch`` says what to send to the broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, or_, select, true, update
from sqlalchemy.orm import Session

from models import IN_PROGRESS, Post, PostEvent, PostStatus, can_move

__all__ = [
    "STEP_STATUS",
    "Dispatch",
    "InvalidTransition",
    "LeaseLost",
    "Step",
    "batch_dispatches",
    "claim",
    "move",
    "move_many",
    "new_token",
    "release_lease",
    "return_moves",
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


class LeaseLost(RuntimeError):
    """The lease moved on (expired and reassigned) while this run worked: its result is dropped."""


class InvalidTransition(RuntimeError):
    """Code asked for a move the state machine does not allow: a bug, never input."""


@dataclass(frozen=True)
class Dispatch:
    """A claimed post and the message that must go to the broker for it."""

    step: Step
    post_id: int
    token: str
    eta: datetime | None = None
    # Generate only: posts with the same key (size, LoRA) may share one generator call.
    batch_key: str = ""


def batch_dispatches(dispatches: Sequence[Dispatch], size: int) -> list[list[Dispatch]]:
    """Group generate dispatches claimed together with one batch key, ``size`` at most;
    every other dispatch travels alone."""
    groups: dict[tuple[str, str], list[Dispatch]] = {}
    out: list[list[Dispatch]] = []
    for d in dispatches:
        if d.step is not Step.GENERATE:
            out.append([d])
            continue
        group = groups.setdefault((d.token, d.batch_key), [])
        group.append(d)
        if len(group) == size:
            out.append(groups.pop((d.token, d.batch_key)))
    return out + list(groups.values())


def new_token() -> str:
    return uuid.uuid4().hex


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


def claim(
    session: Session,
    ids: Sequence[int],
    *,
    step: Step,
    expected: PostStatus | Sequence[PostStatus],
    now: datetime,
    lease_seconds: int,
    actor: str,
    etas: dict[int, datetime] | None = None,
) -> list[Dispatch]:
    """Move posts into ``step``'s in-progress state under a fresh lease token.

    ``etas`` (publish only) holds messages until the post's time; the lease covers the wait.
    """
    token = new_token()
    latest = max([now, *(etas or {}).values()])
    values: dict[str, Any] = {
        "lease_owner": token,
        "lease_expires_at": latest + timedelta(seconds=lease_seconds),
        "next_attempt_at": None,
    }
    if step is Step.GENERATE:
        values["generation"] = Post.generation + 1
    moved = move_many(
        session, ids, expected=expected, to=STEP_STATUS[step], actor=actor, values=values
    )
    etas = etas or {}
    return [Dispatch(step, pid, token, _future(etas.get(pid), now)) for pid in moved]


def _future(eta: datetime | None, now: datetime) -> datetime | None:
    return eta if eta is not None and eta > now else None


def take_lease(
    session: Session, post_id: int, *, step: Step, token: str, now: datetime, lease_seconds: int
) -> str | None:
    """A worker swaps the dispatch token for its own run id; a second delivery then finds none."""
    run_id = f"run-{new_token()}"
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


def due_filter(now: datetime) -> ColumnElement[bool]:
    return or_(Post.next_attempt_at.is_(None), Post.next_attempt_at <= now)


def expired_filter(now: datetime) -> ColumnElement[bool]:
    return and_(Post.status.in_(list(IN_PROGRESS)), Post.lease_expires_at < now)


def locked_ids(
    session: Session, condition: ColumnElement[bool], order: Any, limit: int
) -> list[int]:
    """Ids matching ``condition``, row-locked and skipping rows another beat already holds."""
    stmt = (
        select(Post.id)
        .where(condition)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))
