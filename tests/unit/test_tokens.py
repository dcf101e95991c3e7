"""Instagram-login tokens are refreshed after 24 h and well before they expire; a refused
refresh flags the target for a person instead of losing posts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from models import PublishTarget, TargetKind
from pipeline.crypto import decrypt_secrets
from pipeline.db import session_scope
from pipeline.publishers.targets import TargetIn, create_target
from pipeline.publishers.tokens import refresh_due_tokens, token_due
from pipeline.settings import Settings, load_secret_key
from tests.conftest import NOW
from tests.fakes.graph_api import FakeGraphApi

TOKEN = "IGAAfakeTOKEN0123456789secret"


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi(access_token=TOKEN) as api:
        yield api


def add_target(
    factory: sessionmaker[Session], settings: Settings, graph: FakeGraphApi, **config: str
) -> int:
    with session_scope(factory) as s:
        target = create_target(
            now=NOW,
            session=s,
            settings=settings,
            handle="mia",
            data=TargetIn(
                "mia-ig",
                TargetKind.INSTAGRAM,
                {"ig_user_id": graph.ig_user_id, "base_url": graph.base_url, **config},
                {"access_token": TOKEN},
            ),
        )
        return target.id


LATER = NOW + timedelta(days=2)  # a token entered now may be refreshed from tomorrow on


def refresh(factory: sessionmaker[Session], settings: Settings, when: datetime = LATER) -> int:
    with httpx.Client(timeout=5) as client:
        return refresh_due_tokens(factory, settings=settings, client=client, now=when)


@pytest.mark.parametrize(
    ("config", "due"),
    [
        ({}, True),
        ({"token_refreshed_at": (NOW - timedelta(hours=2)).isoformat()}, False),
        (
            {
                "token_refreshed_at": (NOW - timedelta(days=2)).isoformat(),
                "token_expires_at": (NOW + timedelta(days=58)).isoformat(),
            },
            False,
        ),
        (
            {
                "token_refreshed_at": (NOW - timedelta(days=11)).isoformat(),
                "token_expires_at": (NOW + timedelta(days=49)).isoformat(),
            },
            True,
        ),
        ({"base_url": "https://graph.facebook.com"}, False),
    ],
)
def test_a_token_is_due_after_a_day_and_well_before_it_expires(
    config: dict[str, str], due: bool
) -> None:
    assert token_due(config, NOW) is due


def test_a_due_token_is_replaced_encrypted_with_its_new_expiry(
    factory: sessionmaker[Session], settings: Settings, graph: FakeGraphApi, influencer_id: int
) -> None:
    target_id = add_target(factory, settings, graph)
    assert refresh(factory, settings) == 1
    with factory() as s:
        target = s.get_one(PublishTarget, target_id)
    new = decrypt_secrets(target.secrets_encrypted or "", load_secret_key(settings))
    assert new["access_token"] != TOKEN and new["access_token"] not in target.secrets_encrypted
    assert target.config["token_refreshed_at"] == LATER.isoformat()
    assert refresh(factory, settings) == 0  # fresh now: not again within 24 h


def test_a_token_entered_today_is_not_refreshed_today(
    factory: sessionmaker[Session], settings: Settings, graph: FakeGraphApi, influencer_id: int
) -> None:
    add_target(factory, settings, graph)
    assert refresh(factory, settings, when=NOW) == 0


def test_a_refused_refresh_flags_the_target_for_a_person(
    factory: sessionmaker[Session], settings: Settings, graph: FakeGraphApi, influencer_id: int
) -> None:
    target_id = add_target(factory, settings, graph)
    graph.revoke_tokens()
    assert refresh(factory, settings) == 0
    with factory() as s:
        assert s.get_one(PublishTarget, target_id).needs_reauth is True
