"""Fixtures for the command-line tests: ``ryla`` runs the CLI in-process on a fresh data folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from admin.cli import cli

Invoke = Callable[..., Result]


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
