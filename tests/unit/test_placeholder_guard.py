"""The placeholder guard: the preview generator's images never go to an Instagram or webhook
target; such a post waits as preview_only, saying why, unless the target is a test target that
accepts previews. The outbox still takes them, and each image records its generator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import Asset, AssetKind, PostStatus, PublishAttempt, PublishTarget, TargetKind, utcnow
from pipeline.db import session_scope
from pipeline.errors import InputError
from pipeline.generators import GeneratedImage, GenerationRequest, PreviewGenerator
from pipeline.generators.base import is_placeholder
from pipeline.publishers.targets import TargetIn, create_target
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch
from pipeline.steps.moves import Step
from pipeline.steps.run import run_step
from pipeline.steps.runtime import Runtime
from pipeline.steps.triggers import cancel, trigger
from tests.conftest import NOW
from tests.fakes.steps_kit import (
    RecordingPublisher,
    drain,
    first_tick,
    make_runtime,
    new_post,
    post_of,
)

S = PostStatus


@dataclass
class RealGenerator:
    """Stands in for Z-Image: its images are marked as real (``preview: False``)."""

    meta: dict[str, Any]
    name: str = "zimage"

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        drawn = PreviewGenerator().generate(requests)
        return [
            GeneratedImage(d.image, {**self.meta, "seed": r.seed})
            for d, r in zip(drawn, requests, strict=True)
        ]


REAL = {"generator": "zimage", "preview": False}


def add_target(
    factory: sessionmaker[Session], settings: Settings, kind: TargetKind, **extra: Any
) -> None:
    config, secrets = {}, {"url": "https://hooks.example/x", "signing_key": "k" * 32}
    if kind is TargetKind.INSTAGRAM:
        config, secrets = {"ig_user_id": "17841400000000001"}, {"access_token": "IGAAtoken"}
    with session_scope(factory) as s:
        create_target(
            session=s,
            settings=settings,
            handle="mia",
            data=TargetIn(f"mia-{kind}", kind, config, secrets, **extra),
            now=utcnow(),
        )


def attempts(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(PublishAttempt)) or 0)


@pytest.mark.parametrize("kind", [TargetKind.INSTAGRAM, TargetKind.WEBHOOK])
def test_placeholders_never_go_to_instagram_or_a_webhook_the_post_waits_saying_why(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int, kind: TargetKind
) -> None:
    """Issue 10, item 7: RYLA_GENERATOR=auto without a GPU drew previews."""
    add_target(factory, settings, kind)
    post_id = new_post(factory)
    publisher = RecordingPublisher()
    drain(make_runtime(settings, factory, publisher=publisher), first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert post.status is S.PREVIEW_ONLY
    message = post.last_error or ""
    assert "placeholder images (generator: preview)" in message
    assert f"{kind} target 'mia-{kind}'" in message and f"ryla post generate {post_id}" in message
    assert publisher.sent == [] and attempts(factory) == 0


def test_the_outbox_takes_placeholders_and_says_so(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    drain(make_runtime(settings, factory), first_tick(settings, factory))
    assert post_of(factory, post_id).status is S.PUBLISHED
    folder = settings.outbox_dir / "mia" / f"post-{post_id:06d}"
    manifest = json.loads((folder / "post.json").read_text())
    assert (manifest["generator"], manifest["preview"]) == ("preview", True)


def test_a_test_target_that_accepts_previews_takes_them(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    add_target(factory, settings, TargetKind.WEBHOOK, accept_previews=True)
    post_id = new_post(factory)
    publisher = RecordingPublisher()
    drain(make_runtime(settings, factory, publisher=publisher), first_tick(settings, factory))
    assert post_of(factory, post_id).status is S.PUBLISHED
    [request] = publisher.sent
    assert (request.metadata["generator"], request.metadata["preview"]) == ("preview", True)


def test_real_images_go_to_instagram(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    add_target(factory, settings, TargetKind.INSTAGRAM)
    post_id = new_post(factory)
    publisher = RecordingPublisher()
    rt = make_runtime(settings, factory, generator=RealGenerator(REAL), publisher=publisher)
    drain(rt, first_tick(settings, factory))
    assert post_of(factory, post_id).status is S.PUBLISHED
    assert publisher.sent[0].metadata["preview"] is False


def test_an_image_of_unknown_origin_is_held_like_a_placeholder(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    add_target(factory, settings, TargetKind.INSTAGRAM)
    post_id = new_post(factory)
    rt = make_runtime(settings, factory, generator=RealGenerator({"generator": "homebrew"}))
    drain(rt, first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert post.status is S.PREVIEW_ONLY and "generator: homebrew" in (post.last_error or "")


def test_a_target_added_after_rendering_is_checked_again_before_anything_is_sent(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    publisher = RecordingPublisher()
    rt = make_runtime(settings, factory, publisher=publisher)
    (generate,) = first_tick(settings, factory)
    follow = drain_until_ready(rt, generate)
    assert post_of(factory, post_id).status is S.PUBLISHING  # rendered for the outbox
    add_target(factory, settings, TargetKind.INSTAGRAM)  # now the influencer's first target
    drain(rt, follow)
    assert post_of(factory, post_id).status is S.PREVIEW_ONLY
    assert publisher.sent == [] and attempts(factory) == 0


def drain_until_ready(rt: Runtime, dispatch: Dispatch) -> list[Dispatch]:
    """Generate and render; return the publish claim that follows."""
    follow = run_step(rt, dispatch.step, dispatch.post_id, dispatch.token)
    return run_step(rt, follow[0].step, follow[0].post_id, follow[0].token)


def test_a_preview_only_post_goes_once_its_target_accepts_previews(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    add_target(factory, settings, TargetKind.WEBHOOK)
    post_id = new_post(factory)
    publisher = RecordingPublisher()
    rt = make_runtime(settings, factory, publisher=publisher)
    drain(rt, first_tick(settings, factory))
    with session_scope(factory) as s:
        dispatch = trigger(s, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="editor")
    drain(rt, [dispatch])  # checked again: still held
    assert post_of(factory, post_id).status is S.PREVIEW_ONLY and publisher.sent == []
    with session_scope(factory) as s:
        target = s.scalars(select(PublishTarget)).one()
        target.config = {**target.config, "accept_previews": True}
        dispatch = trigger(s, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="editor")
    drain(rt, [dispatch])
    assert post_of(factory, post_id).status is S.PUBLISHED and len(publisher.sent) == 1


def test_regenerating_a_preview_only_post_with_z_image_publishes_it(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    add_target(factory, settings, TargetKind.INSTAGRAM)
    post_id = new_post(factory)
    publisher = RecordingPublisher()
    drain(make_runtime(settings, factory, publisher=publisher), first_tick(settings, factory))
    with session_scope(factory) as s:
        dispatch = trigger(s, post_id, Step.GENERATE, settings=settings, now=NOW, actor="editor")
    rt = make_runtime(settings, factory, generator=RealGenerator(REAL), publisher=publisher)
    drain(rt, [dispatch])
    assert post_of(factory, post_id).status is S.PUBLISHED and len(publisher.sent) == 1
    with factory() as s:
        raws = s.scalars(
            select(Asset.meta).where(Asset.kind == AssetKind.RAW).order_by(Asset.generation)
        ).all()
    assert [meta["generator"] for meta in raws] == ["preview", "zimage"]  # each image's maker


def test_accept_previews_is_for_instagram_and_webhook_targets(
    settings: Settings, session: Session, influencer_id: int
) -> None:
    with pytest.raises(InputError, match="the outbox always takes previews"):
        create_target(
            session=session,
            settings=settings,
            handle="mia",
            data=TargetIn("box", TargetKind.OUTBOX, accept_previews=True),
            now=NOW,
        )


@pytest.mark.parametrize(
    ("meta", "placeholder"),
    [
        ({"generator": "preview", "preview": True}, True),
        ({"generator": "zimage", "preview": False}, False),
        ({"generator": "preview", "preview": False}, True),
        ({}, True),
    ],
)
def test_only_images_marked_real_count_as_real(meta: dict[str, Any], placeholder: bool) -> None:
    assert is_placeholder(meta) is placeholder


def test_a_post_held_as_preview_only_can_be_cancelled(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    add_target(factory, settings, TargetKind.INSTAGRAM)
    post_id = new_post(factory)
    drain(make_runtime(settings, factory), first_tick(settings, factory))
    assert post_of(factory, post_id).status is S.PREVIEW_ONLY
    with session_scope(factory) as s:
        cancel(s, post_id, actor="editor")
    assert post_of(factory, post_id).status is S.CANCELLED
