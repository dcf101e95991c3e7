"""Run a claimed step by its name: for the in-process runner and tests that drive dispatches.

The Celery tasks call each step's own ``run_*`` directly.
"""

from __future__ import annotations

from pipeline.steps.claims import Dispatch
from pipeline.steps.generate import run_generate
from pipeline.steps.moves import Step
from pipeline.steps.publish import run_publish
from pipeline.steps.render import run_render
from pipeline.steps.runtime import Runtime

__all__ = ["run_step"]


def run_step(rt: Runtime, step: Step, post_id: int, token: str) -> list[Dispatch]:
    """Take the lease, do the step, settle the outcome, and claim whatever is due next."""
    if step is Step.GENERATE:
        return run_generate(rt, [post_id], token)
    if step is Step.RENDER:
        return run_render(rt, post_id, token)
    return run_publish(rt, post_id, token)
