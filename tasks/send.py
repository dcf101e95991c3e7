"""Sending claimed work to the broker: one message per dispatch, routed by task name.

Always after the claim has committed, so a message never names a claim that rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import Celery, current_app

from pipeline.steps.claims import Dispatch, batch_dispatches
from pipeline.steps.moves import Step
from tasks.app import TASK_NAMES

__all__ = ["send_dispatches"]

log = logging.getLogger(__name__)
GENERATE_BATCH = 4  # images per GPU call: what one 80 GB card holds at 1 MP in bf16


def send_dispatches(dispatches: Iterable[Dispatch], app: Celery | None = None) -> int:
    app = app or current_app
    sent = 0
    for group in batch_dispatches(list(dispatches), GENERATE_BATCH):
        first = group[0]
        ids: object = [d.post_id for d in group] if first.step is Step.GENERATE else first.post_id
        app.send_task(TASK_NAMES[first.step], args=[ids, first.token], eta=first.eta)
        sent += 1
    if sent:
        log.info("sent %d task(s)", sent)
    return sent
