"""``ryla status`` and the studio's ``/healthz`` say which dependency is unreachable; settings
keep the broker's visibility timeout above the longest lease."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from admin.studio.app import create_app
from pipeline.health import HealthCheck
from pipeline.settings import Settings
from tests.unit.conftest import Invoke
from tests.unit.test_cli import assert_one_line_error
from tests.unit.test_health import closed_port


def test_status_names_an_unreachable_broker_and_still_shows_the_posts(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYLA_BROKER_URL", f"redis://:hunter2@127.0.0.1:{closed_port()}/0")
    result = ryla("status")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["database", "reachable"]
    assert lines[1].split()[:2] == ["broker", "unreachable"]
    assert "Connection refused" in lines[1] and "hunter2" not in result.output
    assert "retry by themselves" in result.output
    assert "no posts yet" in result.output  # the database answered, so its part is shown


def test_status_names_an_unreachable_database_without_a_traceback(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql+psycopg://ryla:hunter2@127.0.0.1:{closed_port()}/ryla"
    monkeypatch.setenv("RYLA_DATABASE_URL", url)
    monkeypatch.setenv("RYLA_SECRET_KEY", "k" * 40)
    result = ryla("status")
    assert result.exit_code == 1
    assert result.output.splitlines()[0].split()[:2] == ["database", "unreachable"]
    assert "ryla:***@127.0.0.1" in result.output and "hunter2" not in result.output
    assert "Traceback" not in result.output and "no posts yet" not in result.output


def test_status_says_both_answer(ryla: Invoke) -> None:
    result = ryla("status")
    assert result.exit_code == 0
    assert [line.split()[:2] for line in result.output.splitlines()[:2]] == [
        ["database", "reachable"],
        ["broker", "reachable"],
    ]


@pytest.fixture
def studio(settings: Settings) -> Iterator[tuple[TestClient, dict[str, bool]]]:
    up = {"database": True, "broker": False}

    def probe(name: str):  # type: ignore[no-untyped-def]
        def check() -> None:
            if not up[name]:
                raise ConnectionRefusedError(f"{name}: Connection refused")

        return check

    check = HealthCheck({n: probe(n) for n in up}, min_interval=0, logger=None)
    app = create_app(settings, send=lambda _: None, health=check)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client, up


def test_healthz_is_503_and_names_the_unreachable_dependency(
    studio: tuple[TestClient, dict[str, bool]],
) -> None:
    client, up = studio
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.headers["Content-Type"].startswith(
        "application/json"
    )
    body = answer.json()
    assert body["unreachable"] == ["broker"] and body["broker"]["reachable"] is False
    assert body["broker"]["since"] and body["database"]["reachable"] is True
    up["broker"] = True
    again = client.get("/healthz")
    assert again.status_code == 200 and again.json()["status"] == "ok"
    assert client.head("/healthz").status_code == 200  # what load balancers often send


def test_the_visibility_timeout_must_outlast_the_longest_lease(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"RYLA_REDIS_VISIBILITY_TIMEOUT \(700 s\)"):
        Settings(data_dir=tmp_path, lease_seconds=600, redis_visibility_timeout=700)  # type: ignore[call-arg]
    Settings(data_dir=tmp_path, lease_seconds=600, redis_visibility_timeout=721)  # type: ignore[call-arg]


def test_settings_that_contradict_each_other_are_one_line_without_the_secrets(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYLA_LEASE_SECONDS", "7200")
    monkeypatch.setenv("RYLA_DATABASE_URL", "postgresql+psycopg://ryla:hunter2@db/ryla")
    monkeypatch.setenv("RYLA_SECRET_KEY", "s3cr3t" * 8)
    result = ryla("status")
    assert_one_line_error(result, "RYLA_REDIS_VISIBILITY_TIMEOUT (3600 s)", "at least 7380")
    assert "hunter2" not in result.output and "s3cr3t" not in result.output
