"""Fixtures for the unit tests: ``ryla`` runs the CLI in-process on a fresh data folder; the
publisher tests share a signing media host and an HTTP client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from admin.cli import cli
from tests.fakes.media_server import FakeMediaHost

Invoke = Callable[..., Result]
MEDIA_SECRET = "media-url-secret-for-tests-0123456789abcdef"


@pytest.fixture
def media() -> Iterator[FakeMediaHost]:
    """Serves images at signed URLs and checks them, like ``ryla serve``."""
    with FakeMediaHost(secret=MEDIA_SECRET) as host:
        yield host


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as http:
        yield http


@pytest.fixture
def ryla(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    for name in ("RYLA_DATABASE_URL", "RYLA_BROKER_URL", "RYLA_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RYLA_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    assert invoke("init").exit_code == 0
    return invoke
