"""What an outage leaves behind, put right from the database: claims whose message never went
out, claims whose message a lost broker held, and leases that ran while the database was away.

None of these spends a try: the work did not fail, it waited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, bindparam, select, update
from sqlalchemy.orm import Session

from models import IN_PROGRESS, Post
from pipeline.health import Outage
from pipeline.steps.claims import Dispatch
from pipeline.steps.moves import RUN_PREFIX, move_many, return_moves

__all__ = ["extend_leases", "give_back", "return_unstarted"]

log = logging.getLogger(__name__)

# ``take_lease`` swaps a claim's token for a run id (``RUN_PREFIX``…, the convention
# ``claims.resend_untaken`` and ``tick.reconcile_expired`` read too): a claim still holding its
# token has not started, so its message lives in the broker or in a worker's memory (an ETA).
_STARTED = Post.lease_owner.startswith(RUN_PREFIX)
_RELEASED = {"lease_owner": None, "lease_expires_at": None, "next_attempt_at": None}


def _return(
    session: Session, ids: Sequence[int], owned: ColumnElement[bool], actor: str, detail: str
) -> int:
    """Move in-progress posts among ``ids`` that match ``owned`` back to their stable state."""
    moved = 0
    for src, dst, condition in return_moves():
        where = and_(condition, owned)
        moved += len(
            move_many(
                session,
                ids,
                expected=src,
                to=dst,
                actor=actor,
                detail=detail,
                where=where,
                values=_RELEASED,
            )
        )
    return moved


def give_back(session: Session, dispatches: Sequence[Dispatch], *, actor: str, reason: str) -> int:
    """Claims whose message could not be sent go back where they were claimed from, to be
    claimed again by the next tick; only a claim still under its own token moves."""
    if not dispatches:
        return 0
    ids = [d.post_id for d in dispatches]
    tokens = {d.token for d in dispatches}  # fresh per claim: it fences each post by itself
    return _return(session, ids, Post.lease_owner.in_(tokens), actor, reason)


def return_unstarted(session: Session, *, actor: str, reason: str) -> int:
    """Every claim no worker has taken up goes back, to be claimed and sent again: the broker
    that held their messages lost them (restarted empty, or wiped). A copy that survived in a
    worker's memory arrives with the old token later and is ignored as a duplicate."""
    ids = list(
        session.scalars(
            select(Post.id).where(
                Post.status.in_(list(IN_PROGRESS)), Post.lease_owner.is_not(None), ~_STARTED
            )
        )
    )
    moved = _return(session, ids, ~_STARTED, actor, reason) if ids else 0
    if moved:
        log.warning("%s: %d claim(s) not yet started go out again", reason, moved)
    return moved


def extend_leases(session: Session, *, outage: Outage) -> int:
    """Runs that held a lease when the database went away get that time back, so the
    reconciler does not take a try from work that only waited for the database to return.

    Claims no worker has started keep their short grace: one whose message survived is taken
    under its token whenever it arrives, and one whose message was lost is sent again under
    that token (``claims.resend_untaken``) about a tick after its grace, not an outage later.
    """
    rows = session.execute(
        select(Post.id, Post.lease_expires_at).where(
            Post.status.in_(list(IN_PROGRESS)),
            Post.lease_expires_at >= outage.started,
            _STARTED,
        )
    ).all()
    if not rows:
        return 0
    extra = timedelta(seconds=outage.seconds)
    # Fenced on the old value: a lease a worker renewed meanwhile keeps its newer end.
    stmt = (
        update(Post)
        .where(Post.id == bindparam("pid"), Post.lease_expires_at == bindparam("old"))
        .values(lease_expires_at=bindparam("new"))
        .execution_options(synchronize_session=False)
    )
    result = session.connection().execute(
        stmt, [{"pid": pid, "old": end, "new": end + extra} for pid, end in rows if end]
    )
    extended = int(result.rowcount)
    log.info("%d lease(s) extended by the %.0f s the database was away", extended, outage.seconds)
    return extended
