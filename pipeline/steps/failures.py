"""Where a post goes when a step raises: back with a back-off, waiting for a person, or out.

One policy for every step; the error tree in ``pipeline.errors`` decides the branch. The
database going away is no failure of the step: the claim is kept for the task to resume.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from models import AttemptStatus, Post, PostStatus, PublishAttempt, PublishTarget
from pipeline.db import session_scope
from pipeline.errors import (
    AuthExpired,
    OutcomeUnknown,
    PermanentError,
    PreviewHeld,
    QuotaExceeded,
    TargetUnusable,
    Throttled,
)
from pipeline.health import database_unreachable
from pipeline.observe.steps import step_failed
from pipeline.publishers.targets import resolve_target
from pipeline.settings import Settings
from pipeline.steps.attempts import finish_attempt, open_attempt
from pipeline.steps.moves import STEP_STATUS, Step, release_lease, stable_state_of
from pipeline.steps.runtime import Runtime

__all__ = [
    "WAIT_FOR_PERSON",
    "backoff",
    "failure_move",
    "settle_failure",
    "settle_unless_unreachable",
]

log = logging.getLogger(__name__)
S = PostStatus
WAIT_FOR_PERSON = timedelta(minutes=15)  # re-check a target that needs a person


def backoff(attempts: int) -> timedelta:
    # Exponential with jitter, so a burst of failures does not retry in lockstep.
    return timedelta(seconds=min(900.0, 10.0 * 2**attempts) * random.uniform(0.8, 1.2))


def settle_failure(rt: Runtime, step: Step, post_id: int, run_id: str, exc: Exception) -> None:
    """Record how a step ended on its post, if this run still holds the lease."""
    message = f"{step} failed: {exc}" if str(exc) else f"{step} failed: {type(exc).__name__}"
    now = rt.clock()
    with session_scope(rt.session_factory) as session:
        post = session.get_one(Post, post_id)
        to, values, reauth = failure_move(rt.settings, session, post, step, exc, message, now)
        message = str(values.get("last_error") or message)  # what the person reads, in full
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
        attempt = open_attempt(session, post_id) if moved and step is Step.PUBLISH else None
        if attempt is not None and _closes(attempt, to, exc):
            status = AttemptStatus.UNKNOWN if to is S.UNKNOWN else AttemptStatus.FAILED
            finish_attempt(session, attempt.id, status=status, now=now, error=message)
        if moved and reauth is not None:
            reauth.needs_reauth = True
    step_failed(run_id, to=to, exc=exc, moved=moved)
    level = logging.ERROR if to in (S.FAILED, S.UNKNOWN) else logging.WARNING
    log.log(level, "post %s: %s -> %s%s", post_id, message, to, "" if moved else " (lease lost)")


def _closes(attempt: PublishAttempt, to: PostStatus, exc: Exception) -> bool:
    """Whether the post's open attempt ends with this failure.

    It ends with the post (failed, unknown), and also when the post waits for a person (a
    target to re-authorise) before its media_publish was sent: an open attempt exempts a post
    from going stale, so one left open would publish it however late the person came, days of
    held posts at once. Closed, the post is ``missed`` past the grace window like any other;
    within it, the next try starts a fresh attempt.
    """
    if to in (S.FAILED, S.UNKNOWN):
        return True
    return isinstance(exc, AuthExpired | TargetUnusable) and attempt.publish_requested is None


def failure_move(
    settings: Settings,
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
    attempt = open_attempt(session, post.id) if step is Step.PUBLISH else None
    # The rule: once a media_publish for this post may have reached the target, the post can
    # only end published or unknown (a person decides) — never failed — whatever a later call
    # answered. Every way out below that would fail the post ends unknown while one is in doubt.
    doubt = attempt.publish_requested if attempt is not None else None
    out = S.UNKNOWN if doubt else S.FAILED
    if isinstance(exc, OutcomeUnknown):
        return S.UNKNOWN, {"last_error": message}, None
    if isinstance(exc, PreviewHeld):  # nothing was sent: the post waits, saying why
        return S.PREVIEW_ONLY, {"last_error": f"held: {exc}"}, None
    if isinstance(exc, AuthExpired | TargetUnusable):
        reauth = resolve_target(session, post) if isinstance(exc, AuthExpired) else None
        return back, {"last_error": message, "next_attempt_at": now + WAIT_FOR_PERSON}, reauth
    if isinstance(exc, QuotaExceeded):
        retry_at = exc.retry_at or now + WAIT_FOR_PERSON
        return back, {"last_error": message, "next_attempt_at": retry_at}, None
    if isinstance(exc, Throttled):
        started = attempt.started_at if attempt is not None else post.publish_at
        return _throttled(settings, post, exc, now, back, doubt, started)
    attempts = post.attempts + 1
    if isinstance(exc, PermanentError):
        return out, {"last_error": _in_doubt(message, post.id, doubt), "attempts": attempts}, None
    if attempts >= settings.max_attempts:
        log.error("post %s: giving up after %d attempts", post.id, attempts, exc_info=exc)
        return out, {"last_error": _in_doubt(message, post.id, doubt), "attempts": attempts}, None
    wait = backoff(attempts)
    return back, {"last_error": message, "attempts": attempts, "next_attempt_at": now + wait}, None


def settle_unless_unreachable(
    rt: Runtime, step: Step, post_id: int, run_id: str, exc: Exception
) -> bool:
    """Settle a failure on its post; False when the database is unreachable, for the step or
    for the settling: nothing can be written then, and no try is spent, since the work did not
    fail but waited. The caller keeps the claim and resumes it once the database is back."""
    if database_unreachable(exc):
        return False
    try:
        settle_failure(rt, step, post_id, run_id, exc)
    except Exception as again:
        if not database_unreachable(again):
            raise
        return False  # the step runs again after the outage, and fails again if it must
    return True


def _in_doubt(message: str, post_id: int, doubt: str | None) -> str:
    if not doubt:
        return message
    return (
        f"{message}; but an earlier media_publish of container {doubt} may have reached "
        f"Instagram, so the post may be live: `ryla post resolve {post_id}` asks Instagram "
        "and records what it says"
    )


def _throttled(
    settings: Settings,
    post: Post,
    exc: Throttled,
    now: datetime,
    back: PostStatus,
    doubt: str | None,
    started: datetime,
) -> tuple[PostStatus, dict[str, Any], PublishTarget | None]:
    """A rate limit reschedules without spending a try, until the post's budget runs out.

    The budget runs from the post's time (or from a later first try, e.g. a person's publish
    of an old post); the wait grows with how late the post already is, and honours the wait
    the target asks for.
    """
    deadline = max(post.publish_at, started) + timedelta(seconds=settings.throttle_budget_seconds)
    late = max(now - post.publish_at, timedelta(0))
    ours = max(timedelta(seconds=settings.throttle_wait_seconds), late / 2)
    wait = min(ours, timedelta(minutes=15)) * random.uniform(0.9, 1.1)
    asked = timedelta(seconds=exc.retry_after or 0)
    if now >= deadline or now + asked > deadline:
        given_up = (
            f"publish failed: rate limited for {_span(deadline - post.publish_at)} past the "
            "post's time "
            f"(RYLA_THROTTLE_BUDGET_SECONDS={settings.throttle_budget_seconds}); last answer: "
            f"{exc}; nothing was published: `ryla post publish {post.id}` tries again"
        )
        if doubt:
            given_up = _in_doubt(f"publish stopped: {exc}", post.id, doubt)
        return (S.UNKNOWN if doubt else S.FAILED), {"last_error": given_up}, None
    retry_at = min(now + max(wait, asked), deadline)
    waiting = f"publish waiting: {exc}; next try at {retry_at:%H:%M:%S} UTC (no try spent)"
    return back, {"last_error": waiting, "next_attempt_at": retry_at}, None


def _span(length: timedelta) -> str:
    seconds = max(length.total_seconds(), 0.0)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
