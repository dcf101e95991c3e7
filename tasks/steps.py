"""The thin tasks: take a post id and a lease token, run one pipeline step, send follow-ups.

Late acks only where a redelivery is harmless (generate, render); publish acks early.
"""

from __future__ import annotations

from celery import shared_task

from pipeline.publishers.tokens import refresh_due_tokens
from pipeline.steps.generate import run_generate
from pipeline.steps.publish import run_publish
from pipeline.steps.render import run_render
from tasks.runtime import current_runtime
from tasks.send import send_dispatches


@shared_task(name="ryla.generate", acks_late=True, soft_time_limit=300, time_limit=360)
def generate(post_ids: list[int], token: str) -> None:
    """Posts claimed together with one size and LoRA: one generator call for all of them."""
    send_dispatches(run_generate(current_runtime(), post_ids, token))


@shared_task(name="ryla.render", acks_late=True, soft_time_limit=60, time_limit=90)
def render(post_id: int, token: str) -> None:
    send_dispatches(run_render(current_runtime(), post_id, token))


@shared_task(name="ryla.publish", acks_late=False, soft_time_limit=420, time_limit=480)
def publish(post_id: int, token: str) -> None:
    send_dispatches(run_publish(current_runtime(), post_id, token))


@shared_task(name="ryla.refresh_tokens", acks_late=False, soft_time_limit=120, time_limit=150)
def refresh_tokens() -> None:
    """Renew Instagram-login tokens that are due (the beat sends this every hour)."""
    rt = current_runtime()
    assert rt.http is not None
    refresh_due_tokens(rt.session_factory, settings=rt.settings, client=rt.http, now=rt.clock())
