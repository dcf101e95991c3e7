"""The studio's ``/healthz`` asks its own database and broker; while the database is away every
request is a 503 that says so (never a 500 with a traceback), metrics scrapes say it as
``ryla_database_up 0``, and the log says it once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from admin.studio.app import create_app
from admin.studio.core import COOKIE
from pipeline.settings import Settings
from tests.unit.test_health import closed_port


def test_healthz_is_200_when_the_database_and_the_broker_answer(settings: Settings) -> None:
    with TestClient(create_app(settings, send=lambda _: None)) as client:
        answer = client.get("/healthz")
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "ok" and body["unreachable"] == []
    assert body["database"]["reachable"] is True and body["broker"]["reachable"] is True


def test_while_the_database_is_away_every_request_is_a_503_that_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql+psycopg://ryla:hunter2@127.0.0.1:{closed_port()}/ryla"
    away = Settings(database_url=url, secret_key="k" * 40, data_dir=tmp_path)  # type: ignore[call-arg]
    with (
        caplog.at_level(logging.INFO),
        TestClient(create_app(away, send=lambda _: None)) as client,
    ):
        health = client.get("/healthz")
        api = client.get("/api/v1/posts", headers={"Authorization": "Bearer some-token"})
        client.cookies.set(COOKIE, "a-session")
        page = client.get("/calendar", follow_redirects=False)
        scrapes = [client.get("/metrics") for _ in range(3)]
    assert health.status_code == 503 and health.json()["unreachable"] == ["database"]
    assert "Connection refused" in health.json()["database"]["error"]
    assert api.status_code == 503 and "database is unreachable" in api.json()["detail"]
    assert page.status_code == 503 and "database is unreachable" in page.text
    assert api.headers["Retry-After"] == page.headers["Retry-After"] == "10"
    assert all(s.status_code == 200 and "ryla_database_up 0.0" in s.text for s in scrapes)
    said = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("database unreachable, retrying")
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per request
    assert "hunter2" not in health.text + api.text + page.text + caplog.text
