"""Inputs at the edges that once answered 500: each is now one clear 4xx, and nothing half
written stays behind."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Post
from tests.unit.studio.conftest import bearer


def test_a_calendar_name_with_spaces_round_it_answers_the_stored_name(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    body = {"handle": "mia", "name": " spaced ", "days": "daily", "times": "07:00"}
    answer = app_client.post("/api/v1/calendars", json=body, headers=bearer(tokens["editor"]))
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == "spaced"


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        f"cursor={_cursor('1:2147483648')}",
        f"cursor={_cursor('1:99999999999999999999')}",
        f"cursor={_cursor('99999999999999999999:1')}",
        "from=0001-01-01T00:00:00%2B14:00",
        "to=9999-12-31T23:59:59-14:00",
    ],
)
def test_an_edited_cursor_or_a_time_past_the_calendar_is_a_422(
    app_client: TestClient, tokens: dict[str, str], query: str
) -> None:
    answer = app_client.get(f"/api/v1/posts?{query}", headers=bearer(tokens["viewer"]))
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert "start again without it" in problem["msg"] or "out of range" in problem["msg"]


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
@pytest.mark.parametrize("view", ["month", "week"])
def test_the_calendar_page_refuses_a_day_it_cannot_draw(
    editor_page: TestClient, day: str, view: str
) -> None:
    answer = editor_page.get(f"/calendar?day={day}&view={view}")
    assert answer.status_code == 422
    assert "day" in answer.text


@pytest.mark.parametrize("name", ["..", "."])
def test_an_import_without_a_usable_file_name_is_read_as_csv(
    app_client: TestClient, tokens: dict[str, str], name: str
) -> None:
    plan = b"kind,handle,at,caption\npost,mia,2026-12-02 10:00,hello\n"
    answer = app_client.post(
        "/api/v1/imports", files={"file": (name, plan)}, headers=bearer(tokens["editor"])
    )
    assert answer.status_code == 201, answer.text


def test_a_file_that_is_not_utf8_is_named_by_its_own_name(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    answer = app_client.post(
        "/api/v1/imports",
        files={"file": ("plan.csv", b"kind,handle\npost,m\xe9a\n")},
        headers=bearer(tokens["editor"]),
    )
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["msg"].startswith("'plan.csv' is not UTF-8 text (byte 19): save it as UTF-8")
    assert "/tmp" not in answer.text


def test_a_name_in_the_path_that_does_not_exist_is_a_404(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["admin"])
    for path, field in [
        ("/api/v1/posts/999999", "post_id"),
        ("/api/v1/calendars/mia/nothing/pause", "name"),
        ("/api/v1/targets/nothing/check", "name"),
    ]:
        method = "GET" if path.startswith("/api/v1/posts/") else "POST"
        answer = app_client.request(method, path, headers=headers)
        assert answer.status_code == 404, (path, answer.text)
        (problem,) = answer.json()["detail"]
        assert (problem["loc"], problem["type"]) == (["path", field], "not_found"), path


def test_a_value_that_names_nothing_is_a_422_at_the_field_it_was_sent_in(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["editor"])
    sent = app_client.post("/api/v1/posts", json={"handle": "nobody", "at": "+5h"}, headers=headers)
    assert sent.status_code == 422
    assert sent.json()["detail"][0]["loc"] == ["body", "handle"]  # not "at" (in "list")
    queried = app_client.get("/api/v1/posts?handle=nobody", headers=headers)
    assert queried.status_code == 422
    assert queried.json()["detail"][0]["loc"] == ["query", "handle"]
    bad_at = app_client.post("/api/v1/posts", json={"handle": "mia", "at": "soon"}, headers=headers)
    assert bad_at.json()["detail"][0]["loc"] == ["body", "at"]


def test_a_post_sent_again_with_its_key_is_made_once(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    headers = {**bearer(tokens["editor"]), "Idempotency-Key": "create-2"}
    body = {"handle": "mia", "at": "+5h", "caption": "same"}
    first = app_client.post("/api/v1/posts", json=body, headers=headers)
    again = app_client.post("/api/v1/posts", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = app_client.post("/api/v1/posts", json={**body, "caption": "new"}, headers=headers)
    assert other.status_code == 422 and "already used for another request" in other.text
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 1
