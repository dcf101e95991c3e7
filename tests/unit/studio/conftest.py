"""The studio in-process on a fresh SQLite database: a client per person, claims captured.

These run without services; ``tests/integration`` runs the same app behind real uvicorn.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from admin import access
from admin.studio.app import create_app
from models import Role, TokenScope
from pipeline.db import session_scope
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch
from tests.conftest import NOW, add_influencer
from tests.studio_kit import add_token, add_user, sign_in


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its lightest: the same code path, without 64 MiB and ~50 ms per hash."""
    monkeypatch.setattr(
        access, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def sent() -> list[Dispatch]:
    return []


@pytest.fixture
def app_client(
    settings: Settings, factory: sessionmaker[Session], sent: list[Dispatch]
) -> Iterator[TestClient]:
    with session_scope(factory) as s:
        add_influencer(s, approval_required=True)
        for role in Role:
            add_user(s, role.value, role)
    app = create_app(settings, clock=lambda: NOW, send=sent.extend)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def tokens(app_client: TestClient, factory: sessionmaker[Session]) -> dict[str, str]:
    """Bearer headers by name: viewer, editor-read, editor, admin."""
    with session_scope(factory) as s:
        made = {
            "viewer": add_token(s, "viewer", TokenScope.WRITE, NOW),
            "editor-read": add_token(s, "editor", TokenScope.READ, NOW),
            "editor": add_token(s, "editor", TokenScope.WRITE, NOW),
            "admin": add_token(s, "admin", TokenScope.WRITE, NOW),
        }
    return made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def editor_page(app_client: TestClient) -> TestClient:
    assert sign_in(app_client, "editor").status_code == 303
    return app_client
