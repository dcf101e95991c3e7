"""The per-process state of a worker: settings, engine, storage, generator, publishers.

Built lazily in the process that runs tasks (never in a prefork parent: no CUDA, no sockets
shared across a fork).
"""

from __future__ import annotations

import logging
import os
import socket
from functools import partial

import httpx

from models import PublishTarget, utcnow
from pipeline.db import make_engine, make_session_factory
from pipeline.generators import select_generator
from pipeline.health import Watch, watch_engine
from pipeline.media.storage import LocalStorage
from pipeline.publishers import build_publisher
from pipeline.publishers.base import Publisher
from pipeline.publishers.graph_errors import install_log_scrubber
from pipeline.settings import Settings, get_settings
from pipeline.steps.runtime import Runtime

__all__ = ["build_runtime", "current_runtime"]

_state: dict[str, object] = {}


def build_runtime(settings: Settings, *, actor: str) -> Runtime:
    engine = make_engine(settings)
    watch_engine(engine, Watch("database"))  # one line when it goes away, one when it is back
    factory = make_session_factory(engine)
    # One HTTP client per process: connection reuse, and bounded waits on every call.
    client = httpx.Client(
        timeout=httpx.Timeout(settings.http_timeout_seconds, connect=5.0), follow_redirects=False
    )
    install_log_scrubber()
    # httpx logs every request URL at INFO; webhook URLs are secrets (their path is the key).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return Runtime(
        settings=settings,
        session_factory=factory,
        storage=LocalStorage(settings.storage_dir),
        generator_factory=partial(select_generator, settings),
        publisher_factory=partial(_publisher, settings, client),
        actor=actor,
        http=client,
    )


def _publisher(settings: Settings, client: httpx.Client, target: PublishTarget | None) -> Publisher:
    return build_publisher(target, settings=settings, client=client, clock=utcnow)


def current_runtime() -> Runtime:
    """This process's runtime; a forked child builds its own rather than reuse the parent's."""
    if _state.get("pid") != os.getpid():
        actor = f"worker:{socket.gethostname()}:{os.getpid()}"
        _state["runtime"] = build_runtime(get_settings(), actor=actor)
        _state["pid"] = os.getpid()
    runtime = _state["runtime"]
    assert isinstance(runtime, Runtime)
    return runtime
