"""The API fuzzed from its own OpenAPI schema: whatever a client sends, no answer is a 5xx.

Every operation gets generated requests (valid and not) with an admin's write token, against a
database holding an influencer, a post and a calendar; derandomized, so CI runs are the same.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, settings

from admin import access
from admin.studio.app import create_app
from models import Base, Role, TokenScope
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.planning.calendars import add_rule
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.settings import Settings
from tests.conftest import NOW, add_influencer, add_post
from tests.studio_kit import add_token, add_user


def _app_and_token() -> tuple[object, str]:
    """The studio on its own SQLite file: explicit settings, so no RYLA_ variable leaks in."""
    folder = Path(tempfile.mkdtemp(prefix="ryla-fuzz-"))
    config = Settings(
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'fuzz.db'}",
        broker_url="memory://",
        secret_key=secrets.token_urlsafe(32),
        generator="preview",  # type: ignore[arg-type]
    )
    engine = make_engine(config)
    Base.metadata.create_all(engine)
    original, access._hasher = access._hasher, PasswordHasher(time_cost=1, memory_cost=64)
    try:
        with session_scope(make_session_factory(engine)) as s:
            add_influencer(s)
            add_post(s)
            add_rule(
                session=s, handle="mia", calendar_name="daily",
                rule=RuleIn(days="daily", times="09:00"), settings_in=CalendarSettingsIn(),
                character=None, settings=config, now=NOW,
            )  # fmt: skip
            add_user(s, "fuzz", Role.ADMIN)
            token = add_token(s, "fuzz", TokenScope.WRITE, NOW)
    finally:
        access._hasher = original
    engine.dispose()
    return create_app(config, clock=lambda: NOW, send=lambda _: None), token


APP, TOKEN = _app_and_token()
schema = schemathesis.openapi.from_dict(APP.openapi())  # type: ignore[attr-defined]
schema.app = APP


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
