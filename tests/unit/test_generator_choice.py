"""Which generator is active and why: one function, printed by ``ryla demo``, ``run``,
``worker`` and ``status``; ``ryla status`` also says what waits for a person."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from models import Post, PostStatus
from pipeline import generators
from pipeline.db import make_engine, make_session_factory, session_scope
from pipeline.generators import active_generator, select_generator
from pipeline.settings import Settings
from tests.unit.conftest import Invoke
from tests.unit.test_cli import add_mia, assert_one_line_error


def test_the_preview_setting_says_so(tmp_path: Path) -> None:
    active = active_generator(Settings(data_dir=tmp_path, generator="preview"))  # type: ignore[arg-type]
    assert (active.name, active.reason) == ("preview", "RYLA_GENERATOR=preview")
    assert "never to Instagram or a webhook" in active.line


def test_auto_without_a_gpu_picks_the_preview_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generators, "_nvidia_gpu_visible", lambda: False)
    settings = Settings(data_dir=tmp_path, generator="auto")  # type: ignore[arg-type]
    active = active_generator(settings)
    assert active.line.startswith("generator: preview (auto: no NVIDIA GPU on this machine)")
    assert select_generator(settings).name == active.name


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("auto", ("preview", "auto: no weights here")),
        ("zimage", ("zimage", "RYLA_GENERATOR=zimage, but no weights here")),
    ],
)
def test_a_gpu_without_weights_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, expected: tuple[str, str]
) -> None:
    from pipeline.generators import zimage

    monkeypatch.setattr(generators, "_nvidia_gpu_visible", lambda: True)
    monkeypatch.setattr(zimage, "availability", lambda settings: (False, "no weights here"))
    active = active_generator(Settings(data_dir=tmp_path, generator=setting))  # type: ignore[arg-type]
    assert (active.name, active.reason) == expected


def test_status_says_which_generator_and_what_waits_for_a_person(
    ryla: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYLA_GENERATOR", "preview")
    add_mia(ryla)
    for _ in range(3):
        assert ryla("post", "add", "mia", "--at", "+2h").exit_code == 0
    engine = make_engine(Settings(data_dir=tmp_path / "data"))
    with session_scope(make_session_factory(engine)) as s:
        s.execute(update(Post).where(Post.id == 1).values(status=PostStatus.UNKNOWN))
        s.execute(update(Post).where(Post.id > 1).values(status=PostStatus.PREVIEW_ONLY))
    engine.dispose()
    out = ryla("status").output
    assert "1 post(s) may or may not be out: #1" in out
    assert "`ryla post resolve ID` asks Instagram and records what it says" in out
    assert "2 post(s) hold placeholder images, kept from Instagram and webhooks: #2, #3" in out
    assert "generator: preview (RYLA_GENERATOR=preview)" in out


def test_a_worker_says_which_generator_it_runs(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.worker

    monkeypatch.setenv("RYLA_GENERATOR", "preview")
    monkeypatch.setattr(tasks.worker, "start_worker", lambda settings, **kwargs: None)
    assert "generator: preview (RYLA_GENERATOR=preview)" in ryla("worker").output
    assert "generator: none here" in ryla("worker", "--queues", "cpu,io").output


def test_a_test_target_is_added_with_accept_previews_and_listed_as_one(
    ryla: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_mia(ryla)
    monkeypatch.setenv("RYLA_TARGET_WEBHOOK_URL", "https://hooks.example/abc")
    monkeypatch.setenv("RYLA_TARGET_SIGNING_KEY", "k" * 32)
    added = ryla("target", "add", "mia", "hook", "--kind", "webhook", "--accept-previews")
    assert added.exit_code == 0 and "test target that accepts previews" in added.output
    assert "test target: accepts previews" in ryla("target", "list").output
    refused = ryla("target", "add", "mia", "box", "--kind", "outbox", "--accept-previews")
    assert_one_line_error(refused, "--accept-previews is for instagram and webhook")
