"""Resuming a step the database's absence interrupted: the task is sent again, under the same
claim, after a back-off capped at ``RETRY_CAP_SECONDS``; no try is spent on the post.

The claim keeps its lease meanwhile, so no other worker takes the post; when the database is
back the resumed task takes the lease and carries on where the step's records say it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from celery import Task

from pipeline.errors import Unreachable
from pipeline.health import retry_delay

__all__ = ["resumed_when_back"]

log = logging.getLogger(__name__)


@contextmanager
def resumed_when_back(task: Task, *, batch: bool = False) -> Iterator[None]:
    """Around a step's run: on ``Unreachable``, send the task again for each claim it names
    (``batch``: the task takes a list of post ids)."""
    try:
        yield
    except Unreachable as exc:
        _retry(task, exc, batch)


def _retry(task: Task, exc: Unreachable, batch: bool) -> NoReturn:
    retries = task.request.retries
    countdown = round(retry_delay(retries), 1)
    by_owner: dict[str, list[int]] = {}
    for post_id, owner in exc.resume.items():
        by_owner.setdefault(owner, []).append(post_id)
    groups = [([ids if batch else ids[0], owner]) for owner, ids in by_owner.items()]
    # A batch whose posts each held their own run: all but one go as tasks of their own.
    for args in groups[1:]:
        task.apply_async(args=args, countdown=countdown, retries=retries + 1)
    log.debug(
        "%s: posts %s wait for the database; resumed in %.1f s (no try spent)",
        task.name,
        sorted(exc.resume),
        countdown,
    )
    task.retry(args=groups[0], exc=exc, countdown=countdown, max_retries=None)
    raise AssertionError("Task.retry raises")  # pragma: no cover
