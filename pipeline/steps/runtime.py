"""What a process needs to run steps: settings, sessions, storage, generator, publishers.

Built by the worker (``tasks.runtime``) or by a test; the generator loads on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy.orm import Session, sessionmaker

from models import PublishTarget, utcnow
from pipeline.generators import Generator
from pipeline.media.storage import LocalStorage
from pipeline.publishers.base import Publisher
from pipeline.settings import Settings

__all__ = ["Runtime"]


@dataclass
class Runtime:
    """What a worker process needs to run steps; the generator is built on first use."""

    settings: Settings
    session_factory: sessionmaker[Session]
    storage: LocalStorage
    generator_factory: Callable[[], Generator]
    publisher_factory: Callable[[PublishTarget | None], Publisher]
    actor: str
    clock: Callable[[], datetime] = utcnow
    http: httpx.Client | None = None  # for the periodic jobs (token refresh)
    _generator: Generator | None = field(default=None, init=False, repr=False)

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = self.generator_factory()
        return self._generator
