"""Who may do what in the studio: 401 without credentials and 403 for a weaker role or a
read-scoped token, on every route group; sessions, CSRF, throttled sign-in, stored secrets."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from admin.access import FAILURES_PER_NAME, digest
from models import ApiToken, LoginAttempt, StudioSession, User
from tests.studio_kit import PASSWORD, csrf_of, sign_in
from tests.unit.studio.conftest import bearer

# One route of each group: (method, path, json body) — reads, then writes, then admin-only.
READS = [
    ("GET", "/api/v1/posts", None),
    ("GET", "/api/v1/posts/1", None),
    ("GET", "/api/v1/influencers", None),
    ("GET", "/api/v1/influencers/mia/characters", None),
    ("GET", "/api/v1/calendars", None),
    ("GET", "/api/v1/targets", None),
    ("GET", "/api/v1/status", None),
    ("GET", "/api/v1/openapi.json", None),
]
WRITES = [
    ("POST", "/api/v1/posts", {"handle": "mia", "at": "+1h"}),
    ("POST", "/api/v1/posts/1/approve", None),
    ("POST", "/api/v1/posts/1/reject", {"note": "no"}),
    ("POST", "/api/v1/influencers", {"handle": "x", "display_name": "X", "timezone": "UTC"}),
    ("POST", "/api/v1/influencers/mia/pause", None),
    ("POST", "/api/v1/influencers/mia/characters", {"name": "B"}),
    ("POST", "/api/v1/calendars", {"handle": "mia", "name": "c", "days": "daily", "times": "9:00"}),
    ("PATCH", "/api/v1/calendars/mia/c", {"times": "10:00"}),
    ("DELETE", "/api/v1/calendars/mia/c", None),
]
ADMIN = [
    ("POST", "/api/v1/targets/t/secrets", {"access_token": "x"}),
    ("POST", "/api/v1/targets/t/check", None),
]
PAGES = ["/calendar", "/feed", "/queue", "/posts/1", "/status", "/plan", "/targets", "/"]


def call(client: TestClient, method: str, path: str, body: object, token: str | None = None):
    headers = bearer(token) if token else {}
    return client.request(method, path, json=body, headers=headers, follow_redirects=False)


@pytest.mark.parametrize(("method", "path", "body"), READS + WRITES + ADMIN)
def test_every_api_route_group_answers_401_without_credentials(
    app_client: TestClient, method: str, path: str, body: object
) -> None:
    answer = call(app_client, method, path, body)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), READS + WRITES + ADMIN)
def test_a_bad_token_is_401_like_none(
    app_client: TestClient, method: str, path: str, body: object
) -> None:
    assert call(app_client, method, path, body, "ryla_not-a-token").status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), WRITES + ADMIN)
def test_a_read_token_and_a_viewer_get_403_on_every_write_route_group(
    app_client: TestClient, tokens: dict[str, str], method: str, path: str, body: object
) -> None:
    for who, said in (
        ("editor-read", "editor's read-only token may not do this"),
        ("viewer", "viewer (viewer) may not do this"),
    ):
        answer = call(app_client, method, path, body, tokens[who])
        assert answer.status_code == 403, (who, answer.text)
        assert answer.json()["detail"].startswith(said), answer.text


@pytest.mark.parametrize(("method", "path", "body"), ADMIN)
def test_only_admins_manage_targets(
    app_client: TestClient, tokens: dict[str, str], method: str, path: str, body: object
) -> None:
    assert call(app_client, method, path, body, tokens["editor"]).status_code == 403
    assert call(app_client, method, path, body, tokens["admin"]).status_code == 404  # no such


@pytest.mark.parametrize(("method", "path", "body"), READS)
def test_a_read_token_reads_every_group(
    app_client: TestClient, tokens: dict[str, str], method: str, path: str, body: object
) -> None:
    answer = call(app_client, method, path, body, tokens["editor-read"])
    assert answer.status_code in (200, 404), answer.text  # post 1 does not exist: 404


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_stranger_to_sign_in(app_client: TestClient, path: str) -> None:
    answer = app_client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


def test_a_viewer_sees_pages_but_cannot_act_and_an_editor_cannot_manage_targets(
    app_client: TestClient,
) -> None:
    sign_in(app_client, "viewer")
    assert app_client.get("/queue").status_code == 200
    csrf = csrf_of(app_client)
    refused = app_client.post("/posts/1/do/approve", data={"csrf_token": csrf})
    assert refused.status_code == 403
    sign_in(app_client, "editor")
    csrf = csrf_of(app_client)
    refused = app_client.post("/targets/t/check", data={"csrf_token": csrf})
    assert refused.status_code == 403


def test_the_session_cookie_is_httponly_and_samesite(app_client: TestClient) -> None:
    answer = sign_in(app_client, "editor")
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "ryla_session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_a_form_without_its_csrf_token_is_refused(
    app_client: TestClient, factory: sessionmaker[Session]
) -> None:
    sign_in(app_client, "editor")
    form = {"handle": "zoe", "display_name": "Zoe", "timezone": "UTC"}
    assert app_client.post("/plan/influencers", data=form).status_code == 403
    forged = app_client.post("/plan/influencers", data={**form, "csrf_token": "forged"})
    assert forged.status_code == 403
    with factory() as s:
        assert s.scalars(select(User.id).where(User.username == "zoe")).first() is None


def test_api_changes_signed_by_a_cookie_need_the_csrf_header(app_client: TestClient) -> None:
    sign_in(app_client, "editor")
    body = {"handle": "zoe", "display_name": "Zoe", "timezone": "UTC"}
    assert app_client.post("/api/v1/influencers", json=body).status_code == 403
    csrf = csrf_of(app_client)
    done = app_client.post("/api/v1/influencers", json=body, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 201


def test_sign_in_is_throttled_after_repeated_failures(app_client: TestClient) -> None:
    for _ in range(FAILURES_PER_NAME):
        assert sign_in(app_client, "editor", "wrong-password!").status_code == 401
    throttled = sign_in(app_client, "editor", PASSWORD)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert sign_in(app_client, "admin").status_code == 303  # another name is not held back


def test_a_wrong_password_and_an_unknown_name_read_the_same(app_client: TestClient) -> None:
    wrong = sign_in(app_client, "editor", "wrong-password!")
    unknown = sign_in(app_client, "nobody", "wrong-password!")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        "wrong user name or password" in wrong.text
        and "wrong user name or password" in unknown.text
    )


def test_secrets_are_stored_hashed_never_in_plain_text(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    answer = sign_in(app_client, "editor")
    cookie = answer.cookies.get("ryla_session") or app_client.cookies.get("ryla_session")
    with factory() as s:
        hashes = list(s.scalars(select(User.password_hash)))
        assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
        stored = set(s.scalars(select(ApiToken.token_hash)))
        assert digest(tokens["editor"]) in stored and tokens["editor"] not in stored
        assert s.get(StudioSession, digest(str(cookie))) is not None
        assert s.get(StudioSession, str(cookie)) is None


def test_a_revoked_token_stops_working(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    from admin.access import revoke_token
    from pipeline.db import session_scope
    from tests.conftest import NOW

    assert call(app_client, "GET", "/api/v1/posts", None, tokens["editor"]).status_code == 200
    with session_scope(factory) as s:
        token_id = s.scalars(
            select(ApiToken.id).where(ApiToken.token_hash == digest(tokens["editor"]))
        ).one()
        revoke_token(session=s, token_id=token_id, now=NOW)
    assert call(app_client, "GET", "/api/v1/posts", None, tokens["editor"]).status_code == 401


def test_signing_out_ends_the_session(app_client: TestClient) -> None:
    sign_in(app_client, "editor")
    csrf = csrf_of(app_client)
    assert (
        app_client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code
        == 303
    )
    assert app_client.get("/queue", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
def test_signing_in_never_redirects_to_another_site(app_client: TestClient, target: str) -> None:
    form = app_client.get("/login")
    import re

    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token
    answer = app_client.post(
        "/login",
        data={
            "username": "editor",
            "password": PASSWORD,
            "login_token": token.group(1),
            "next": target,
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/calendar"


def test_a_sign_in_with_nul_is_refused_before_the_database_sees_it(
    app_client: TestClient, factory: sessionmaker[Session]
) -> None:
    """PostgreSQL cannot store NUL: a multipart form (not scanned for it) must not reach it."""
    form = app_client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token
    answer = app_client.post(
        "/login",
        files={"username": (None, "edi\x00tor"), "password": (None, "x"),
               "login_token": (None, token.group(1))},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 401
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(LoginAttempt)) == 0


def test_a_disabled_user_is_out_everywhere_until_enabled_and_a_new_role_applies_at_once(
    app_client: TestClient, tokens: dict[str, str], factory: sessionmaker[Session]
) -> None:
    from admin.access import set_access
    from models import Role
    from pipeline.db import session_scope

    assert sign_in(app_client, "editor").status_code == 303
    approve = ("POST", "/api/v1/posts/1/approve", None)
    assert call(app_client, "GET", "/api/v1/posts", None, tokens["editor"]).status_code == 200

    with session_scope(factory) as s:
        done = set_access(session=s, username="editor", active=False)
    assert (done.changed, done.sessions_ended, done.live_tokens) == (True, 1, 2)
    assert app_client.get("/queue", follow_redirects=False).status_code == 303  # signed out
    assert call(app_client, "GET", "/api/v1/posts", None, tokens["editor"]).status_code == 401
    assert call(app_client, "GET", "/api/v1/posts", None, tokens["editor-read"]).status_code == 401
    assert sign_in(app_client, "editor").status_code != 303  # the password is refused too

    with session_scope(factory) as s:
        assert set_access(session=s, username="editor", active=True).changed
    assert call(app_client, "GET", "/api/v1/posts", None, tokens["editor"]).status_code == 200
    assert call(app_client, *approve, tokens["editor"]).status_code != 403

    with session_scope(factory) as s:
        set_access(session=s, username="editor", role=Role.VIEWER)
    assert call(app_client, *approve, tokens["editor"]).status_code == 403
    assert call(app_client, "GET", "/api/v1/posts", None, tokens["editor"]).status_code == 200
