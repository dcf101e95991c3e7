"""Fixtures for the unit tests: ``ryla`` runs the CLI in-process on a fresh data folder; the
publisher tests share a signing media host and an HTTP client."""

from __future__ import annotations

import shutil
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


_SERVICES = ("RYLA_DATABASE_URL", "RYLA_BROKER_URL", "RYLA_SECRET_KEY")


@pytest.fixture(scope="session")
def _initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder after ``ryla init``, made once per process: its migrations take a third
    of a second, and over a hundred tests start from one."""
    data = tmp_path_factory.mktemp("initialised") / "data"
    with pytest.MonkeyPatch.context() as env:
        for name in _SERVICES:
            env.delenv(name, raising=False)
        env.setenv("RYLA_DATA_DIR", str(data))
        result = CliRunner().invoke(cli, ["init"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return data


@pytest.fixture
def ryla(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _initialised: Path) -> Invoke:
    """The CLI in-process on a data folder of this test's own, initialised."""
    for name in _SERVICES:
        monkeypatch.delenv(name, raising=False)
    shutil.copytree(_initialised, tmp_path / "data")
    monkeypatch.setenv("RYLA_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke
