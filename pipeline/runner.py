"""Runs one step for one post under its lease, and settles every way it can end.

Called by the thin Celery tasks (and by tests directly). Returns the follow-up dispatches so
the caller, not this module, talks to the broker.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import AttemptStatus, Post, PostStatus, PublishAttempt, PublishTarget, utcnow
from pipeline.captions import CaptionError
from pipeline.db import session_scope
from pipeline.dispatch import (
    STEP_STATUS,
    Dispatch,
    LeaseLost,
    Step,
    release_lease,
    stable_state_of,
    take_lease,
)
from pipeline.generators import GeneratedImage, GenerationError, Generator
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
    GenerateJob,
    perform_render,
    prepare_generate,
    prepare_render,
    record_generate,
    record_render,
    render_destination,
    store_generated,
)
from pipeline.storage import LocalStorage, StorageError

__all__ = ["LeaseLost", "Runtime", "run_generate", "run_step"]

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
    http: httpx.Client | None = None  # for the periodic jobs (token refresh)
    _generator: Generator | None = field(default=None, init=False, repr=False)

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = self.generator_factory()
        return self._generator


def run_step(rt: Runtime, step: Step, post_id: int, token: str) -> list[Dispatch]:
    """Take the lease, do the step, settle the outcome, and claim whatever is due next."""
    if step is Step.GENERATE:
        return run_generate(rt, [post_id], token)
    run_id = _take_leases(rt, step, [post_id], token).get(post_id)
    if run_id is None:
        return []
    try:
        _STEPS[step](rt, post_id, run_id)
    except LeaseLost:
        log.warning("post %s: lease lost during %s; the result was dropped", post_id, step)
        return []
    except Exception as exc:  # every other ending is recorded on the post
        _settle_failure(rt, step, post_id, run_id, exc)
        return []
    return _follow_ups(rt, [post_id])


def run_generate(rt: Runtime, post_ids: Sequence[int], token: str) -> list[Dispatch]:
    """Generate posts claimed together (same size and LoRA) in one generator call.

    Each image has its own seed, so it is what the post would get alone; each post is recorded,
    or fails, on its own.
    """
    runs = _take_leases(rt, Step.GENERATE, post_ids, token)
    jobs: dict[int, GenerateJob] = {}
    for post_id, run_id in runs.items():
        try:
            with session_scope(rt.session_factory) as session:
                jobs[post_id] = prepare_generate(session, session.get_one(Post, post_id))
        except Exception as exc:
            _settle_failure(rt, Step.GENERATE, post_id, run_id, exc)
    if not jobs:
        return []
    try:
        requests = [request for job in jobs.values() for request in job.requests]
        images = rt.generator.generate(requests)
        if len(images) != len(requests):
            raise GenerationError(f"generator returned {len(images)} of {len(requests)} images")
    except Exception as exc:
        for post_id in jobs:
            _settle_failure(rt, Step.GENERATE, post_id, runs[post_id], exc)
        return []
    done, start = [], 0
    for post_id, job in jobs.items():
        mine = images[start : start + len(job.requests)]
        start += len(job.requests)
        if _record_generated(rt, job, mine, runs[post_id]):
            done.append(post_id)
    return _follow_ups(rt, done)


def _record_generated(
    rt: Runtime, job: GenerateJob, images: list[GeneratedImage], run_id: str
) -> bool:
    try:
        raws = store_generated(job, images, rt.storage)
        with session_scope(rt.session_factory) as session:
            values = record_generate(session, job, raws)
            _finish(rt, session, job.post_id, Step.GENERATE, run_id, S.GENERATED, values)
    except LeaseLost:
        log.warning("post %s: lease lost during generate; the image was dropped", job.post_id)
        return False
    except Exception as exc:
        _settle_failure(rt, Step.GENERATE, job.post_id, run_id, exc)
        return False
    seconds = sum(float(raw.meta.get("duration_s") or 0.0) for raw in raws)
    log.info(
        "post %s: generated %s in %.3f s",
        job.post_id,
        ", ".join(raw.stored.key for raw in raws),
        seconds,
    )
    return True


def _take_leases(rt: Runtime, step: Step, post_ids: Sequence[int], token: str) -> dict[int, str]:
    """The posts this delivery may work on: a second delivery of a message finds none."""
    runs = {}
    with session_scope(rt.session_factory) as session:
        for post_id in post_ids:
            run_id = take_lease(
                session,
                post_id,
                step=step,
                token=token,
                now=rt.clock(),
                lease_seconds=rt.settings.lease_seconds,
            )
            if run_id is None:
                log.info(
                    "post %s: %s already taken or moved on; duplicate delivery ignored",
                    post_id,
                    step,
                )
            else:
                runs[post_id] = run_id
    return runs


def _follow_ups(rt: Runtime, post_ids: Sequence[int]) -> list[Dispatch]:
    dispatches: list[Dispatch] = []
    with session_scope(rt.session_factory) as session:
        for post_id in post_ids:
            dispatches += claim_due(
                session, settings=rt.settings, now=rt.clock(), post_id=post_id, actor=rt.actor
            )
    return dispatches


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
        checkpoint = attempt_checkpoint(
            rt.session_factory,
            attempt_id,
            post_id=post_id,
            run_id=run_id,
            settings=rt.settings,
            clock=rt.clock,
        )
        result = publisher.publish(job.request, checkpoint)
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
            "attempts": 0,
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


# Render and publish, one post per message (generate runs through ``run_generate``).
_STEPS: dict[Step, Callable[[Runtime, int, str], None]] = {
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
        to, values, reauth = _failure_move(rt, session, post, step, exc, message, now)
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
        # Only the run that still holds the lease may close the attempt or flag the target:
        # a run that lost it must not touch what its successor is using.
        if moved and step is Step.PUBLISH and to in (S.FAILED, S.UNKNOWN):
            status = AttemptStatus.UNKNOWN if to is S.UNKNOWN else AttemptStatus.FAILED
            if attempt := _open_attempt(session, post_id):
                finish_attempt(session, attempt.id, status=status, now=now, error=message)
        if moved and reauth is not None:
            reauth.needs_reauth = True
    level = logging.ERROR if to in (S.FAILED, S.UNKNOWN) else logging.WARNING
    log.log(level, "post %s: %s -> %s%s", post_id, message, to, "" if moved else " (lease lost)")


def _failure_move(
    rt: Runtime,
    session: Session,
    post: Post,
    step: Step,
    exc: Exception,
    message: str,
    now: datetime,
) -> tuple[PostStatus, dict[str, Any], PublishTarget | None]:
    """Where the post goes, what it records, and a target to flag for re-authorisation."""
    # From the step, not the row: the row may have moved on (cancelled, reconciled) meanwhile.
    back = stable_state_of(STEP_STATUS[step], post.approved_at is not None)
    if isinstance(exc, OutcomeUnknown):
        return S.UNKNOWN, {"last_error": message}, None
    if isinstance(exc, AuthExpired | TargetUnusable):
        reauth = resolve_target(session, post) if isinstance(exc, AuthExpired) else None
        return back, {"last_error": message, "next_attempt_at": now + WAIT_FOR_PERSON}, reauth
    if isinstance(exc, QuotaExceeded):
        retry_at = exc.retry_at or now + WAIT_FOR_PERSON
        return back, {"last_error": message, "next_attempt_at": retry_at}, None
    attempts = post.attempts + 1
    if isinstance(exc, PERMANENT):
        return S.FAILED, {"last_error": message, "attempts": attempts}, None
    if attempts >= rt.settings.max_attempts:
        log.error("post %s: giving up after %d attempts", post.id, attempts, exc_info=exc)
        # A publish that may have reached the target is a person's call, never a silent failure.
        attempt = _open_attempt(session, post.id) if step is Step.PUBLISH else None
        sent = attempt is not None and attempt.publish_requested is not None
        values = {"last_error": message, "attempts": attempts}
        return (S.UNKNOWN if sent else S.FAILED), values, None
    wait = _backoff(attempts)
    if isinstance(exc, GraphThrottled) and exc.retry_after:
        wait = max(wait, timedelta(seconds=exc.retry_after))
    return back, {"last_error": message, "attempts": attempts, "next_attempt_at": now + wait}, None


def _open_attempt(session: Session, post_id: int) -> PublishAttempt | None:
    """The post's unfinished publish attempt (at most one: a partial unique index)."""
    return session.scalars(
        select(PublishAttempt).where(
            PublishAttempt.post_id == post_id, PublishAttempt.status == AttemptStatus.STARTED
        )
    ).first()
