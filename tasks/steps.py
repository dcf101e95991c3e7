"""The thin tasks: take a post id and a lease token, run one pipeline step, send follow-ups.

Late acks only where a redelivery is harmless (generate, render); publish acks early.
"""

from __future__ import annotations

from celery import shared_task

from pipeline.dispatch import Step
from pipeline.runner import run_step
from tasks.runtime import current_runtime
from tasks.send import send_dispatches


@shared_task(name="ryla.generate", acks_late=True, soft_time_limit=300, time_limit=360)
def generate(post_id: int, token: str) -> None:
    send_dispatches(run_step(current_runtime(), Step.GENERATE, post_id, token))


@shared_task(name="ryla.render", acks_late=True, soft_time_limit=60, time_limit=90)
def render(post_id: int, token: str) -> None:
    send_dispatches(run_step(current_runtime(), Step.RENDER, post_id, token))


@shared_task(name="ryla.publish", acks_late=False, soft_time_limit=420, time_limit=480)
def publish(post_id: int, token: str) -> None:
    send_dispatches(run_step(current_runtime(), Step.PUBLISH, post_id, token))
