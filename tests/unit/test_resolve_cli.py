"""``ryla post publish`` and ``ryla post resolve`` on a post that may be out, against the fake
Graph API: publishing again is refused in one line; resolving asks Instagram first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from models import AttemptStatus, Post, PostStatus, PublishAttempt, TargetKind, utcnow
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.settings import Settings
from tests.fakes.graph_api import FakeGraphApi
from tests.unit.conftest import Invoke
from tests.unit.test_cli import add_mia, assert_one_line_error

TOKEN = "IGAAfakeTOKEN0123456789secret"


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    with FakeGraphApi(access_token=TOKEN) as fake:
        yield fake


@pytest.fixture
def unknown_post(
    ryla: Invoke, graph: FakeGraphApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> int:
    """Post 1 went unknown after a media_publish of container ``graph`` knows as "c"."""
    add_mia(ryla)
    monkeypatch.setenv("RYLA_TARGET_ACCESS_TOKEN", TOKEN)
    added = ryla(
        "target", "add", "mia", "mia-ig", "--kind", "instagram",
        "--ig-user-id", graph.ig_user_id, "--base-url", graph.base_url,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert ryla("post", "add", "mia", "--at", "now").exit_code == 0
    engine = make_engine(Settings(data_dir=tmp_path / "data"))
    with session_scope(make_session_factory(engine)) as s:
        s.execute(update(Post).values(status=PostStatus.UNKNOWN, caption="Lisbon at dawn"))
        s.add(
            PublishAttempt(
                id="a-1",
                post_id=1,
                target_kind=TargetKind.INSTAGRAM,
                status=AttemptStatus.UNKNOWN,
                started_at=utcnow() - timedelta(minutes=1),
            )
        )
    engine.dispose()
    return 1


def point_attempt_at(tmp_path: Path, container_id: str) -> None:
    engine = make_engine(Settings(data_dir=tmp_path / "data"))
    with session_scope(make_session_factory(engine)) as s:
        s.execute(
            update(PublishAttempt).values(container_id=container_id, publish_requested=container_id)
        )
    engine.dispose()


def test_publishing_a_post_that_may_be_out_is_refused_in_one_line(
    ryla: Invoke, graph: FakeGraphApi, unknown_post: int, tmp_path: Path
) -> None:
    point_attempt_at(tmp_path, graph.seed_container("Lisbon at dawn", published=False).id)
    result = ryla("post", "publish", str(unknown_post))
    assert_one_line_error(result, "may already be on Instagram", "ryla post resolve 1")
    assert graph.calls("create") == 0


def test_resolving_asks_instagram_and_records_the_media(
    ryla: Invoke, graph: FakeGraphApi, unknown_post: int, tmp_path: Path
) -> None:
    container = graph.seed_container("Lisbon at dawn", published=True)
    point_attempt_at(tmp_path, container.id)
    result = ryla("post", "resolve", str(unknown_post))
    assert result.exit_code == 0, result.output
    assert f"published as {container.media_id}" in result.output
    assert "published as" in ryla("post", "show", "1").output


def test_not_published_is_refused_when_instagram_shows_the_post(
    ryla: Invoke, graph: FakeGraphApi, unknown_post: int, tmp_path: Path
) -> None:
    point_attempt_at(tmp_path, graph.seed_container("Lisbon at dawn", published=True).id)
    result = ryla("post", "resolve", str(unknown_post), "--not-published")
    assert_one_line_error(result, "as PUBLISHED", "nothing was changed")


def test_resolving_when_instagram_cannot_be_reached_changes_nothing(
    ryla: Invoke, graph: FakeGraphApi, unknown_post: int, tmp_path: Path
) -> None:
    point_attempt_at(tmp_path, graph.seed_container("Lisbon at dawn", published=False).id)
    graph.fail_next(20, route="status", status=503)
    result = ryla("post", "resolve", str(unknown_post), "--not-published")
    assert_one_line_error(result, "could not be asked", "--skip-check")
    graph.clear_faults()
    result = ryla("post", "resolve", str(unknown_post), "--not-published")
    assert result.exit_code == 0 and "not published" in result.output
