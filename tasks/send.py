"""Sending claimed work to the broker: one message per dispatch, routed by task name.

Always after the claim has committed, so a message never names a claim that rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import Celery, current_app

from pipeline.dispatch import Dispatch
from tasks.app import TASK_NAMES

__all__ = ["send_dispatches"]

log = logging.getLogger(__name__)


def send_dispatches(dispatches: Iterable[Dispatch], app: Celery | None = None) -> int:
    app = app or current_app
    sent = 0
    for d in dispatches:
        app.send_task(TASK_NAMES[d.step], args=[d.post_id, d.token], eta=d.eta)
        sent += 1
    if sent:
        log.info("sent %d task(s)", sent)
    return sent
