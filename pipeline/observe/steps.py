"""One record per finished step: which post, whose, how long, how it ended; logged, and handed
to listeners (the worker's metrics).

The lease code calls ``steps_started`` when a run takes its posts and ``step_finished`` /
``step_failed`` / ``step_lost`` when each ends; this module reads the rest from the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Asset, AssetKind, Influencer, Post, PostStatus
from pipeline.errors import AuthExpired, QuotaExceeded, TargetUnusable

__all__ = [
    "Listener",
    "StepEnded",
    "add_listener",
    "remove_listener",
    "step_failed",
    "step_finished",
    "step_lost",
    "steps_started",
]

log = logging.getLogger("pipeline.steps")
S = PostStatus
_WAITING = (AuthExpired, TargetUnusable, QuotaExceeded)  # back, waiting for a person or a window
_MAX_RUNS = 10_000  # runs a process may have open at once; far more means entries leaked


@dataclass(frozen=True)
class StepEnded:
    step: str  # generate | render | publish
    post_id: int
    influencer: str
    seconds: float
    outcome: str  # ok | retry | waiting | failed | unknown | lease_lost
    to: str | None = None  # the post's state afterwards
    error_class: str | None = None
    image_seconds: tuple[float, ...] = ()  # generate: each image's share of the GPU time
    generator: str = ""
    lateness_seconds: float | None = None  # publish: published_at - publish_at


Listener = Callable[[StepEnded], None]
_listeners: list[Listener] = []
_runs: dict[str, tuple[float, str, int, str]] = {}  # run id -> (start, step, post id, handle)


def add_listener(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def steps_started(session: Session, step: str, runs: Sequence[tuple[int, str]]) -> None:
    """Runs (post id, run id) that just took their leases: one query for the handles."""
    if not runs:
        return
    ids = [post_id for post_id, _ in runs]
    handles = dict(
        session.execute(
            select(Post.id, Influencer.handle)
            .join(Influencer, Influencer.id == Post.influencer_id)
            .where(Post.id.in_(ids))
        ).all()
    )
    if len(_runs) > _MAX_RUNS:
        _runs.clear()
    now = time.monotonic()
    for post_id, run_id in runs:
        _runs[run_id] = (now, step, post_id, handles.get(post_id, "-"))


def step_finished(session: Session, run_id: str, *, to: PostStatus) -> None:
    """The run moved its post out of the step: success."""
    run = _runs.pop(run_id, None)
    if run is None:
        return
    started, step, post_id, handle = run
    extra: dict[str, Any] = {}
    if step == "generate":
        extra = _images(session, post_id)
    elif step == "publish":
        extra = {"lateness_seconds": _lateness(session, post_id)}
    _emit(StepEnded(step, post_id, handle, time.monotonic() - started, "ok", to.value, **extra))


def step_failed(run_id: str, *, to: PostStatus, exc: BaseException, moved: bool) -> None:
    """The step raised; ``to`` is where the failure policy sent the post (if ``moved``)."""
    run = _runs.pop(run_id, None)
    if run is None:
        return
    started, step, post_id, handle = run
    if not moved:
        outcome = "lease_lost"
    elif to is S.FAILED:
        outcome = "failed"
    elif to is S.UNKNOWN:
        outcome = "unknown"
    else:
        outcome = "waiting" if isinstance(exc, _WAITING) else "retry"
    seconds = time.monotonic() - started
    _emit(StepEnded(step, post_id, handle, seconds, outcome, to.value, type(exc).__name__))


def step_lost(run_id: str) -> None:
    """Another run holds the post now: this run's result was dropped."""
    run = _runs.pop(run_id, None)
    if run is not None:
        started, step, post_id, handle = run
        _emit(StepEnded(step, post_id, handle, time.monotonic() - started, "lease_lost"))


def _images(session: Session, post_id: int) -> dict[str, Any]:
    generation = select(Post.generation).where(Post.id == post_id).scalar_subquery()
    metas = session.scalars(
        select(Asset.meta)
        .where(Asset.post_id == post_id, Asset.generation == generation)
        .where(Asset.kind == AssetKind.RAW)
        .order_by(Asset.format)
    ).all()
    seconds = tuple(float(m.get("duration_s") or 0.0) for m in metas)
    generator = str(metas[0].get("generator") or "") if metas else ""
    return {"image_seconds": seconds, "generator": generator}


def _lateness(session: Session, post_id: int) -> float | None:
    row = session.execute(
        select(Post.publish_at, Post.published_at).where(Post.id == post_id)
    ).first()
    if row is None or row.published_at is None:
        return None
    due: datetime = row.publish_at
    return (row.published_at - due).total_seconds()


def _emit(event: StepEnded) -> None:
    level = logging.INFO if event.outcome in ("ok", "retry", "waiting") else logging.WARNING
    detail = f" ({event.error_class})" if event.error_class else ""
    where = f" -> {event.to}" if event.to else ""
    log.log(
        level,
        "post %s @%s: %s %s%s in %.2f s%s",
        event.post_id,
        event.influencer,
        event.step,
        event.outcome,
        detail,
        event.seconds,
        where,
        extra={
            "post_id": event.post_id,
            "influencer": event.influencer,
            "step": event.step,
            "seconds": round(event.seconds, 4),
            "outcome": event.outcome,
            "error_class": event.error_class,
        },
    )
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception:  # metrics must never break a step
            log.exception("step listener %r failed", listener)
