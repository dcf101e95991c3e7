"""The thin tasks: take a post id and a lease token, run one pipeline step, send follow-ups.

Late acks only where a redelivery is harmless (generate, render); publish acks early. A step
the database's absence interrupted is resumed under the same claim once it is back.
"""

from __future__ import annotations

from celery import Task, shared_task

from pipeline.publishers.tokens import refresh_due_tokens
from pipeline.steps.claims import Dispatch
from pipeline.steps.generate import run_generate
from pipeline.steps.publish import run_publish
from pipeline.steps.render import run_render
from pipeline.steps.runtime import Runtime
from tasks.resume import resumed_when_back
from tasks.runtime import current_runtime
from tasks.send import send_dispatches

# Retried while the database is away, however long: each try is a cheap failed connect.
_RESUMABLE = {"bind": True, "max_retries": None}


def _send_next(rt: Runtime, dispatches: list[Dispatch]) -> None:
    """Send what the step claimed next; with the broker away it goes back to the beat."""
    send_dispatches(dispatches, give_back_to=rt.session_factory, actor=rt.actor)


@shared_task(
    name="ryla.generate", acks_late=True, soft_time_limit=300, time_limit=360, **_RESUMABLE
)
def generate(self: Task, post_ids: list[int], token: str) -> None:
    """Posts claimed together with one size and LoRA: one generator call for all of them."""
    rt = current_runtime()
    with resumed_when_back(self, batch=True):
        _send_next(rt, run_generate(rt, post_ids, token))


@shared_task(name="ryla.render", acks_late=True, soft_time_limit=60, time_limit=90, **_RESUMABLE)
def render(self: Task, post_id: int, token: str) -> None:
    rt = current_runtime()
    with resumed_when_back(self):
        _send_next(rt, run_render(rt, post_id, token))


@shared_task(
    name="ryla.publish", acks_late=False, soft_time_limit=420, time_limit=480, **_RESUMABLE
)
def publish(self: Task, post_id: int, token: str) -> None:
    rt = current_runtime()
    with resumed_when_back(self):
        _send_next(rt, run_publish(rt, post_id, token))


@shared_task(name="ryla.refresh_tokens", acks_late=False, soft_time_limit=120, time_limit=150)
def refresh_tokens() -> None:
    """Renew Instagram-login tokens that are due (the beat sends this every hour)."""
    rt = current_runtime()
    assert rt.http is not None
    refresh_due_tokens(rt.session_factory, settings=rt.settings, client=rt.http, now=rt.clock())
