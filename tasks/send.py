"""Sending claimed work to the broker: one message per dispatch, routed by task name.

Always after the claim has committed, so a message never names a claim that rolled back. When
the broker refuses, every claim not yet sent is given back, to be claimed again next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from celery import Celery, current_app
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import session_scope
from pipeline.health import describe_error
from pipeline.steps.claims import Dispatch, batch_dispatches
from pipeline.steps.moves import Step
from pipeline.steps.outage import give_back
from tasks.app import TASK_NAMES
from tasks.broker import broker_unreachable, broker_watch

__all__ = ["send_dispatches"]

log = logging.getLogger(__name__)
GENERATE_BATCH = 4  # images per GPU call: what one 80 GB card holds at 1 MP in bf16


def send_dispatches(
    dispatches: Iterable[Dispatch],
    app: Celery | None = None,
    *,
    give_back_to: sessionmaker[Session] | None = None,
    actor: str = "beat",
) -> int:
    """Send each group of dispatches; return how many messages went out.

    With ``give_back_to``, a refusal gives every unsent claim back (no try spent) instead of
    raising: it is claimed again once the broker answers, rather than when its lease ends.
    """
    app = app or current_app
    groups = batch_dispatches(list(dispatches), GENERATE_BATCH)
    for sent, group in enumerate(groups):
        first = group[0]
        ids: object = [d.post_id for d in group] if first.step is Step.GENERATE else first.post_id
        try:
            app.send_task(TASK_NAMES[first.step], args=[ids, first.token], eta=first.eta)
        except Exception as exc:
            if give_back_to is None:
                raise
            _give_back([d for g in groups[sent:] for d in g], give_back_to, actor, exc)
            return sent
    if groups:
        broker_watch().answered()
        log.info("sent %d task(s)", len(groups))
    return len(groups)


def _give_back(
    unsent: Sequence[Dispatch], factory: sessionmaker[Session], actor: str, exc: Exception
) -> None:
    if broker_unreachable(exc):
        broker_watch().failed(exc)
        reason = "broker unreachable: the message was not sent"
    else:
        log.error("sending tasks failed", exc_info=exc)
        reason = f"the message was not sent ({describe_error(exc)})"
    try:
        with session_scope(factory) as session:
            moved = give_back(session, unsent, actor=actor, reason=reason)
    except Exception as again:  # the database went too: the claims come back with their lease
        log.error("%d claim(s) not sent nor given back: %s", len(unsent), describe_error(again))
        return
    log.warning("%d claim(s) given back, to be sent again (%s)", moved, reason)
