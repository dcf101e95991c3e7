"""Runs one step for one post under its lease, and settles every way it can end.

Called by the thin Celery tasks (and by tests directly). Returns the follow-up dispatches so
the caller, not this module, talks to the broker.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import AttemptStatus, Post, PostStatus, PublishAttempt, PublishTarget, utcnow
from pipeline.captions import CaptionError
from pipeline.db import session_scope
from pipeline.dispatch import Dispatch, Step, release_lease, stable_state_of, take_lease
from pipeline.generators import GenerationError, Generator
from pipeline.prompts import PromptError
from pipeline.publish_step import (
    MediaLinks,
    attempt_checkpoint,
    finish_attempt,
    prepare_publish,
    resolve_target,
)
from pipeline.publishers.base import (
    AuthExpired,
    OutcomeUnknown,
    PermanentPublishError,
    Publisher,
    QuotaExceeded,
    TargetUnusable,
)
from pipeline.publishers.graph_errors import GraphThrottled
from pipeline.renditions import RenderError
from pipeline.scheduler import claim_due
from pipeline.settings import Settings
from pipeline.steps import (
    perform_generate,
    perform_render,
    prepare_generate,
    prepare_render,
    record_generate,
    record_render,
    render_destination,
)
from pipeline.storage import LocalStorage, StorageError

__all__ = ["LeaseLost", "Runtime", "run_step"]

log = logging.getLogger(__name__)
S = PostStatus

# Errors that another try cannot fix: the post fails at once with the message.
PERMANENT: tuple[type[Exception], ...] = (
    PromptError,
    RenderError,
    CaptionError,
    GenerationError,
    PermanentPublishError,
    StorageError,
)
WAIT_FOR_PERSON = timedelta(minutes=15)  # re-check a target that needs a person


class LeaseLost(RuntimeError):
    """The lease moved on (expired and reassigned) while this run worked: its result is dropped."""


@dataclass
class Runtime:
    """What a worker process needs to run steps; the generator is built on first use."""

    settings: Settings
    session_factory: sessionmaker[Session]
    storage: LocalStorage
    generator_factory: Callable[[], Generator]
    publisher_factory: Callable[[PublishTarget | None], Publisher]
    actor: str
    clock: Callable[[], datetime] = utcnow
    _generator: Generator | None = field(default=None, init=False, repr=False)

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = self.generator_factory()
        return self._generator


def run_step(rt: Runtime, step: Step, post_id: int, token: str) -> list[Dispatch]:
    """Take the lease, do the step, settle the outcome, and claim whatever is due next."""
    with session_scope(rt.session_factory) as session:
        run_id = take_lease(
            session,
            post_id,
            step=step,
            token=token,
            now=rt.clock(),
            lease_seconds=rt.settings.lease_seconds,
        )
    if run_id is None:
        log.info("post %s: %s already taken or moved on; duplicate delivery ignored", post_id, step)
        return []
    try:
        _STEPS[step](rt, post_id, run_id)
    except LeaseLost:
        log.warning("post %s: lease lost during %s; the result was dropped", post_id, step)
        return []
    except Exception as exc:  # every other ending is recorded on the post
        _settle_failure(rt, step, post_id, run_id, exc)
        return []
    with session_scope(rt.session_factory) as session:
        return claim_due(
            session, settings=rt.settings, now=rt.clock(), post_id=post_id, actor=rt.actor
        )


def _finish(
    rt: Runtime,
    session: Session,
    post_id: int,
    step: Step,
    run_id: str,
    to: PostStatus,
    values: dict[str, Any],
    detail: str = "",
) -> None:
    if not release_lease(
        session,
        post_id,
        step=step,
        run_id=run_id,
        to=to,
        actor=rt.actor,
        values=values,
        detail=detail,
    ):
        raise LeaseLost(post_id)


def _generate(rt: Runtime, post_id: int, run_id: str) -> None:
    with session_scope(rt.session_factory) as session:
        job = prepare_generate(session, session.get_one(Post, post_id))
    raw = perform_generate(job, generator=rt.generator, storage=rt.storage)
    with session_scope(rt.session_factory) as session:
        values = record_generate(session, job, raw)
        _finish(rt, session, post_id, Step.GENERATE, run_id, S.GENERATED, values)
    log.info(
        "post %s: generated %s in %.3f s", post_id, raw.stored.key, raw.meta.get("duration_s", 0.0)
    )


def _render(rt: Runtime, post_id: int, run_id: str) -> None:
    with session_scope(rt.session_factory) as session:
        job = prepare_render(session, session.get_one(Post, post_id))
    outcome = perform_render(job, storage=rt.storage)
    with session_scope(rt.session_factory) as session:
        values = record_render(session, job, outcome)
        # Warnings (e.g. more than 5 hashtags) travel in the audit row, not as an error.
        warnings = "; ".join(outcome.caption.warnings)
        _finish(
            rt,
            session,
            post_id,
            Step.RENDER,
            run_id,
            render_destination(job),
            values,
            detail=f"warning: {warnings}" if warnings else "",
        )


def _publish(rt: Runtime, post_id: int, run_id: str) -> None:
    links = MediaLinks(rt.settings, rt.clock())
    with session_scope(rt.session_factory) as session:
        post = session.get_one(Post, post_id)
        job = prepare_publish(session, post, storage=rt.storage, links=links)
        target = session.get(PublishTarget, job.target_id) if job.target_id else None
    # The attempt row is committed now, before the publisher makes any external call.
    attempt_id = job.request.attempt_id
    if job.already is not None:
        result = job.already
    else:
        publisher = _usable_publisher(rt, target)
        result = publisher.publish(job.request, attempt_checkpoint(rt.session_factory, attempt_id))
        with session_scope(rt.session_factory) as session:
            finish_attempt(
                session, attempt_id, status=AttemptStatus.SUCCEEDED, now=rt.clock(), result=result
            )
    with session_scope(rt.session_factory) as session:
        values = {
            "published_at": rt.clock(),
            "external_id": result.external_id,
            "permalink": result.permalink,
            "last_error": None,
        }
        _finish(rt, session, post_id, Step.PUBLISH, run_id, S.PUBLISHED, values)
    log.info("post %s: published to %s as %s", post_id, job.target_kind, result.external_id)


def _usable_publisher(rt: Runtime, target: PublishTarget | None) -> Publisher:
    if target is not None and target.needs_reauth:
        raise TargetUnusable(
            f"publish target {target.name!r} needs re-authorisation: "
            "enter a new token with `ryla target token`"
        )
    try:
        return rt.publisher_factory(target)
    except ValueError as exc:  # missing settings, or secrets the key cannot open
        raise TargetUnusable(f"publish target {target.name if target else '-'!r}: {exc}") from None


_STEPS: dict[Step, Callable[[Runtime, int, str], None]] = {
    Step.GENERATE: _generate,
    Step.RENDER: _render,
    Step.PUBLISH: _publish,
}


def _backoff(attempts: int) -> timedelta:
    # Exponential with jitter, so a burst of failures does not retry in lockstep.
    return timedelta(seconds=min(900.0, 10.0 * 2**attempts) * random.uniform(0.8, 1.2))


def _settle_failure(rt: Runtime, step: Step, post_id: int, run_id: str, exc: Exception) -> None:
    message = f"{step} failed: {exc}" if str(exc) else f"{step} failed: {type(exc).__name__}"
    now = rt.clock()
    with session_scope(rt.session_factory) as session:
        post = session.get_one(Post, post_id)
        attempt_id = _open_attempt_id(session, post_id) if step is Step.PUBLISH else None
        to, values = _failure_move(rt, session, post, exc, message, now)
        if attempt_id and to in (S.FAILED, S.UNKNOWN):
            status = AttemptStatus.UNKNOWN if to is S.UNKNOWN else AttemptStatus.FAILED
            finish_attempt(session, attempt_id, status=status, now=now, error=message)
        moved = release_lease(
            session,
            post_id,
            step=step,
            run_id=run_id,
            to=to,
            actor=rt.actor,
            detail=message,
            values=values,
        )
    level = logging.ERROR if to in (S.FAILED, S.UNKNOWN) else logging.WARNING
    log.log(level, "post %s: %s -> %s%s", post_id, message, to, "" if moved else " (lease lost)")


def _failure_move(
    rt: Runtime, session: Session, post: Post, exc: Exception, message: str, now: datetime
) -> tuple[PostStatus, dict[str, Any]]:
    back = stable_state_of(post.status, post.approved_at is not None)
    if isinstance(exc, OutcomeUnknown):
        return S.UNKNOWN, {"last_error": message}
    if isinstance(exc, AuthExpired | TargetUnusable):
        if isinstance(exc, AuthExpired):
            _needs_reauth(session, post)
        return back, {"last_error": message, "next_attempt_at": now + WAIT_FOR_PERSON}
    if isinstance(exc, QuotaExceeded):
        return back, {
            "last_error": message,
            "next_attempt_at": exc.retry_at or now + WAIT_FOR_PERSON,
        }
    attempts = post.attempts + 1
    if isinstance(exc, PERMANENT):
        return S.FAILED, {"last_error": message, "attempts": attempts}
    if attempts >= rt.settings.max_attempts:
        log.error("post %s: giving up after %d attempts", post.id, attempts, exc_info=exc)
        # A publish that may have reached the target is a person's call, never a silent failure.
        sent = post.status is S.PUBLISHING and _publish_requested(session, post.id)
        return (S.UNKNOWN if sent else S.FAILED), {"last_error": message, "attempts": attempts}
    wait = _backoff(attempts)
    if isinstance(exc, GraphThrottled) and exc.retry_after:
        wait = max(wait, timedelta(seconds=exc.retry_after))
    return back, {"last_error": message, "attempts": attempts, "next_attempt_at": now + wait}


def _needs_reauth(session: Session, post: Post) -> None:
    target = resolve_target(session, post)
    if target is not None:
        target.needs_reauth = True


def _publish_requested(session: Session, post_id: int) -> bool:
    return bool(
        session.scalars(
            select(PublishAttempt.publish_requested).where(
                PublishAttempt.post_id == post_id,
                PublishAttempt.status == AttemptStatus.STARTED,
                PublishAttempt.publish_requested.is_not(None),
            )
        ).first()
    )


def _open_attempt_id(session: Session, post_id: int) -> str | None:
    return session.scalars(
        select(PublishAttempt.id).where(
            PublishAttempt.post_id == post_id, PublishAttempt.status == AttemptStatus.STARTED
        )
    ).first()
