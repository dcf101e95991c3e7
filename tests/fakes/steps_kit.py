"""Running steps in-process for tests: a runtime without workers, draining dispatches as
workers would, and small publishers and generators that fail on cue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from models import Post
from pipeline.db import session_scope
from pipeline.generators import GeneratedImage, GenerationRequest, PreviewGenerator
from pipeline.media.storage import LocalStorage
from pipeline.publishers import build_publisher
from pipeline.publishers.base import PublishRequest, PublishResult
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch
from pipeline.steps.run import run_step
from pipeline.steps.runtime import Runtime
from pipeline.steps.tick import tick
from tests.conftest import NOW, add_post

__all__ = [
    "FlakyGenerator",
    "RecordingPublisher",
    "drain",
    "first_tick",
    "make_runtime",
    "new_post",
    "post_of",
]


@dataclass
class FlakyGenerator:
    """Fails the first ``failures`` calls, then draws previews."""

    failures: int
    name: str = "flaky"
    calls: int = 0

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("GPU worker lost its device")
        return PreviewGenerator().generate(requests)


@dataclass
class RecordingPublisher:
    kind: str = "recording"
    fail_with: Exception | None = None
    sent: list[PublishRequest] = field(default_factory=list)

    def publish(
        self, request: PublishRequest, checkpoint: Callable[[str, str], None]
    ) -> PublishResult:
        checkpoint("container_id", f"c-{request.post_id}")
        if self.fail_with:
            raise self.fail_with
        self.sent.append(request)
        return PublishResult(external_id=f"media-{request.post_id}")


def make_runtime(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    generator: Any = None,
    publisher: Any = None,
) -> Runtime:
    return Runtime(
        settings=settings,
        session_factory=factory,
        storage=LocalStorage(settings.storage_dir),
        generator_factory=lambda: generator or PreviewGenerator(),
        publisher_factory=(lambda target: publisher)
        if publisher
        else (lambda target: build_publisher(target, settings=settings, clock=lambda: NOW)),
        actor="test-worker",
        clock=lambda: NOW,
    )


def drain(rt: Runtime, dispatches: list[Dispatch]) -> None:
    """Run dispatches and their follow-ups, as workers would (ETAs ignored)."""
    queue = list(dispatches)
    while queue:
        d = queue.pop(0)
        queue += run_step(rt, d.step, d.post_id, d.token)


def first_tick(settings: Settings, factory: sessionmaker[Session]) -> list[Dispatch]:
    with session_scope(factory) as s:
        return tick(s, settings=settings, now=NOW).dispatches


def post_of(factory: sessionmaker[Session], post_id: int) -> Post:
    with factory() as s:
        return s.get_one(Post, post_id)


def new_post(factory: sessionmaker[Session], **kwargs: object) -> int:
    with session_scope(factory) as s:
        return add_post(s, **kwargs)
