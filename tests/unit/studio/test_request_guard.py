"""Requests refused before any route reads them: bodies over the cap (413, before sign-in is
even checked, so nobody can make the server hold what they send) and NUL characters (422, for
every field at once: PostgreSQL text cannot hold them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from admin.studio.guard import MAX_BODY_BYTES, MAX_UPLOAD_BYTES
from models import Post
from tests.studio_kit import csrf_of
from tests.unit.studio.conftest import bearer


def _posts(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(Post)) or 0)


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body with no Content-Length (chunked), as a streaming client sends it."""
    yield b'{"handle": "mia", "at": "+3h", "caption": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_a_body_over_the_cap_is_refused_before_sign_in(app_client: TestClient) -> None:
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    answer = app_client.post(
        "/api/v1/posts", content=big, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.json()["detail"] == (
        f"request body of {len(big):,} bytes is too large: send at most {MAX_BODY_BYTES:,}"
    )


def test_a_chunked_body_is_counted_as_it_comes(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    headers = {**bearer(tokens["editor"]), "content-type": "application/json"}
    answer = app_client.post("/api/v1/posts", content=_chunks(2 * MAX_BODY_BYTES), headers=headers)
    assert answer.status_code == 413
    assert answer.json()["detail"].startswith(f"request body of over {MAX_BODY_BYTES:,} bytes")
    assert _posts(factory) == 0


def test_a_small_chunked_body_goes_through(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    headers = {**bearer(tokens["editor"]), "content-type": "application/json"}
    answer = app_client.post("/api/v1/posts", content=_chunks(1000, 100), headers=headers)
    assert answer.status_code == 201, answer.text
    assert _posts(factory) == 1


def test_an_import_may_be_larger_than_a_json_body(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    csv = b"kind,handle,at\n" + b"#" * (2 * MAX_BODY_BYTES) + b"\n"
    answer = app_client.post(
        "/api/v1/imports", files={"file": ("plan.csv", csv)}, headers=bearer(tokens["editor"])
    )
    assert answer.status_code == 422  # read by the importer, which names what is wrong
    too_big = b"x" * MAX_UPLOAD_BYTES
    answer = app_client.post(
        "/api/v1/imports", files={"file": ("plan.csv", too_big)}, headers=bearer(tokens["editor"])
    )
    assert answer.status_code == 413


NUL_REQUESTS = [
    ("post", "/api/v1/posts", {"handle": "mia", "at": "+3h", "caption": "a\u0000b"}),
    ("post", "/api/v1/posts", {"handle": "mi\u0000a", "at": "+3h"}),
    ("get", "/api/v1/posts?handle=a%00b", None),
    ("post", "/api/v1/targets/x%00/check", None),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS)
def test_nul_anywhere_is_one_clear_refusal(
    app_client: TestClient,
    tokens: dict[str, str],
    factory: sessionmaker[Session],
    method: str,
    path: str,
    body: object,
) -> None:
    answer = app_client.request(method, path, json=body, headers=bearer(tokens["admin"]))
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["msg"].startswith("text may not contain NUL characters")
    assert _posts(factory) == 0


def test_nul_in_a_page_form_is_refused_on_the_error_page(editor_page: TestClient) -> None:
    token = csrf_of(editor_page)
    answer = editor_page.post(
        "/plan/hold", data={"csrf_token": token, "handle": "mi\u0000a"}, follow_redirects=False
    )
    assert answer.status_code == 422
    assert "text may not contain NUL characters" in answer.text
    assert editor_page.get("/calendar?handle=a%00b").status_code == 422


def test_a_literal_backslash_u_is_text_not_nul(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    """Only JSON's escape of NUL is looked for: other escapes and backslashes pass."""
    body = {"handle": "mia", "at": "+3h", "caption": "price \\u20ac 5 \u20ac"}
    answer = app_client.post("/api/v1/posts", json=body, headers=bearer(tokens["editor"]))
    assert answer.status_code == 201, answer.text
