"""Working under a lease: take it, do the step's work, and settle every way the work can end.

``held`` wraps one post's work: a lost lease drops the result; any other exception is settled
on the post by ``failures.settle_failure``; success leaves ``lease.ok`` set. When the database
goes away nothing can be settled: the run raises ``Unreachable``, naming the claims to resume.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from models import PostStatus
from pipeline.db import session_scope
from pipeline.errors import LeaseLost, Unreachable
from pipeline.health import database_unreachable
from pipeline.observe.steps import step_finished, step_lost, steps_started
from pipeline.steps.claims import Dispatch, claim_due
from pipeline.steps.failures import settle_unless_unreachable
from pipeline.steps.moves import Step, release_lease, take_lease
from pipeline.steps.runtime import Runtime

__all__ = ["Lease", "follow_ups", "held", "raise_if_interrupted", "run_leased", "take_leases"]

log = logging.getLogger(__name__)


@dataclass
class Lease:
    """One run's hold on one post for one step."""

    step: Step
    post_id: int
    run_id: str
    ok: bool = False  # the work inside ``held`` finished without raising
    interrupted: bool = False  # the database went away: the claim is kept, to be resumed

    def finish(
        self,
        rt: Runtime,
        session: Session,
        to: PostStatus,
        values: dict[str, Any],
        detail: str = "",
    ) -> None:
        """Move the post out of the step; raise LeaseLost when another run holds it now."""
        released = release_lease(
            session,
            self.post_id,
            step=self.step,
            run_id=self.run_id,
            to=to,
            actor=rt.actor,
            values=values,
            detail=detail,
        )
        if not released:
            raise LeaseLost(self.post_id)
        step_finished(session, self.run_id, to=to)


def take_leases(rt: Runtime, step: Step, post_ids: Sequence[int], token: str) -> list[Lease]:
    """The posts this delivery may work on: a second delivery of a message finds none."""
    try:
        return _take_leases(rt, step, post_ids, token)
    except Exception as exc:
        if database_unreachable(exc):  # nothing was taken: resume under the claim's own token
            raise Unreachable(dict.fromkeys(post_ids, token)) from exc
        raise


def _take_leases(rt: Runtime, step: Step, post_ids: Sequence[int], token: str) -> list[Lease]:
    leases = []
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
                leases.append(Lease(step, post_id, run_id))
        steps_started(session, step, [(lease.post_id, lease.run_id) for lease in leases])
    return leases


@contextmanager
def held(rt: Runtime, lease: Lease) -> Iterator[Lease]:
    """Run the block for ``lease``'s post; every ending is recorded on the post, none escapes."""
    try:
        yield lease
    except LeaseLost:
        step_lost(lease.run_id)
        log.warning(
            "post %s: lease lost during %s; the result was dropped", lease.post_id, lease.step
        )
    except Exception as exc:
        settled = settle_unless_unreachable(rt, lease.step, lease.post_id, lease.run_id, exc)
        lease.interrupted = not settled
    else:
        lease.ok = True


def raise_if_interrupted(leases: Sequence[Lease]) -> None:
    """Raise ``Unreachable`` for the leases the database's absence interrupted, if any."""
    resume = {lease.post_id: lease.run_id for lease in leases if lease.interrupted}
    if resume:
        raise Unreachable(resume)


def run_leased(
    rt: Runtime, step: Step, post_id: int, token: str, work: Callable[[Runtime, Lease], None]
) -> list[Dispatch]:
    """One post, one step: take the lease, ``work`` under it, then claim what is due next."""
    for lease in take_leases(rt, step, [post_id], token):
        with held(rt, lease):
            work(rt, lease)
        raise_if_interrupted([lease])
        if lease.ok:
            return follow_ups(rt, [post_id])
    return []


def follow_ups(rt: Runtime, post_ids: Sequence[int]) -> list[Dispatch]:
    """Claim the next step of posts that just moved on, so it starts without waiting a tick.

    Without the database the beat claims them once it is back: nothing is lost by waiting.
    """
    dispatches: list[Dispatch] = []
    try:
        with session_scope(rt.session_factory) as session:
            for post_id in post_ids:
                dispatches += claim_due(
                    session, settings=rt.settings, now=rt.clock(), post_id=post_id, actor=rt.actor
                )
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        log.warning("posts %s: next step left to the beat (database unreachable)", list(post_ids))
        return []
    return dispatches
