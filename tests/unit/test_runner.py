"""Steps run in-process (no broker): the whole chain, failures, retries and exactly-once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import (
    Asset,
    AssetKind,
    AttemptStatus,
    Influencer,
    Post,
    PostEvent,
    PostStatus,
    PublishAttempt,
    PublishTarget,
)
from pipeline.db import session_scope
from pipeline.errors import InputError, OutcomeUnknown
from pipeline.generators import GeneratedImage, GenerationRequest, PreviewGenerator
from pipeline.publishers.base import Checkpoint, PublishRequest, PublishResult
from pipeline.settings import Settings
from pipeline.steps.claims import batch_dispatches
from pipeline.steps.generate import run_generate
from pipeline.steps.moves import Step
from pipeline.steps.resolve import Answer, resolve_unknown
from pipeline.steps.run import run_step
from pipeline.steps.tick import tick
from pipeline.steps.triggers import approve, cancel, trigger
from tests.conftest import NOW, add_post
from tests.fakes.steps_kit import (
    FlakyGenerator,
    RecordingPublisher,
    drain,
    first_tick,
    make_runtime,
    new_post,
    post_of,
)

S = PostStatus


def test_a_due_post_goes_from_planned_to_the_outbox(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory, scene="beach_day", caption_text="Sun!", hashtags=["summer"])
    drain(make_runtime(settings, factory), first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert post.status is S.PUBLISHED
    folder = settings.outbox_dir / "mia" / f"post-{post_id:06d}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "01-feed_portrait.jpg",
        "caption.txt",
        "post.json",
    ]
    manifest = json.loads((folder / "post.json").read_text())
    assert manifest["is_ai_generated"] is True and "#summer" in manifest["caption"]
    with factory() as s:
        moves = (
            s.execute(
                select(PostEvent.to_status)
                .where(PostEvent.post_id == post_id)
                .order_by(PostEvent.id)
            )
            .scalars()
            .all()
        )
        kinds = sorted(s.scalars(select(Asset.format).where(Asset.post_id == post_id)))
    assert moves == [S.GENERATING, S.GENERATED, S.RENDERING, S.READY, S.PUBLISHING, S.PUBLISHED]
    assert kinds == ["feed_portrait", "raw", "thumbnail"]


def test_the_same_message_twice_runs_the_step_once(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    (d,) = first_tick(settings, factory)
    rt = make_runtime(settings, factory)
    follow = run_step(rt, d.step, d.post_id, d.token)
    assert run_step(rt, d.step, d.post_id, d.token) == []
    drain(rt, follow + follow)  # every later message delivered twice as well
    with factory() as s:
        gens = s.scalars(
            select(PostEvent.id).where(
                PostEvent.post_id == post_id, PostEvent.to_status == S.GENERATED
            )
        ).all()
    assert len(gens) == 1
    assert post_of(factory, post_id).status is S.PUBLISHED


def test_a_failing_generator_is_retried_with_backoff_then_succeeds(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    rt = make_runtime(settings, factory, generator=FlakyGenerator(failures=1))
    drain(rt, first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert (post.status, post.attempts) == (S.PLANNED, 1)
    assert "GPU worker lost its device" in (post.last_error or "")
    assert post.next_attempt_at is not None and post.next_attempt_at > NOW
    with session_scope(factory) as s:  # not before the back-off ends
        assert tick(s, settings=settings, now=NOW).dispatches == []
        later = tick(s, settings=settings, now=post.next_attempt_at).dispatches
    drain(rt, later)
    assert post_of(factory, post_id).status is S.PUBLISHED


def test_a_post_fails_with_the_last_error_when_attempts_run_out(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    rt = make_runtime(settings, factory, generator=FlakyGenerator(failures=99))
    for _ in range(settings.max_attempts):
        with session_scope(factory) as s:
            s.execute(update(Post).values(next_attempt_at=None))
        drain(rt, first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert (post.status, post.attempts) == (S.FAILED, settings.max_attempts)
    assert post.last_error == "generate failed: GPU worker lost its device"


def test_a_broken_caption_template_fails_the_post_at_render(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)  # the door checks the template; here it breaks after that
    with session_scope(factory) as s:
        s.execute(update(Influencer).values(caption_template="{text} in {city}"))
    drain(make_runtime(settings, factory), first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert post.status is S.FAILED
    assert "unknown variable 'city'" in (post.last_error or "")


def test_a_post_that_was_published_is_never_sent_again(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    publisher = RecordingPublisher()
    rt = make_runtime(settings, factory, publisher=publisher)
    drain(rt, first_tick(settings, factory))
    # The answer was recorded but the state move was lost (e.g. the worker died in between).
    with session_scope(factory) as s:
        s.execute(update(Post).values(status=S.READY, external_id=None))
    drain(rt, first_tick(settings, factory))
    assert len(publisher.sent) == 1
    assert post_of(factory, post_id).status is S.PUBLISHED


def test_an_unverifiable_publish_waits_for_a_person(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    publisher = RecordingPublisher(fail_with=OutcomeUnknown("answer lost after media_publish"))
    drain(make_runtime(settings, factory, publisher=publisher), first_tick(settings, factory))
    assert post_of(factory, post_id).status is S.UNKNOWN
    with factory() as s:
        attempt = s.scalars(select(PublishAttempt)).one()
    assert (attempt.status, attempt.container_id) == (AttemptStatus.UNKNOWN, f"c-{post_id}")


def test_an_interrupted_publish_resumes_its_attempt(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    publisher = RecordingPublisher(fail_with=ConnectionError("reset by peer"))
    rt = make_runtime(settings, factory, publisher=publisher)
    drain(rt, first_tick(settings, factory))
    assert post_of(factory, post_id).status is S.READY
    publisher.fail_with = None
    with session_scope(factory) as s:
        s.execute(update(Post).values(next_attempt_at=None))
    drain(rt, first_tick(settings, factory))
    (request,) = publisher.sent
    assert request.resume == {"container_id": f"c-{post_id}"}
    with factory() as s:
        assert len(s.scalars(select(PublishAttempt)).all()) == 1


def test_approval_holds_the_post_until_a_person_approves(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    with session_scope(factory) as s:
        s.execute(update(Influencer).values(approval_required=True))
    post_id = new_post(factory)
    rt = make_runtime(settings, factory)
    drain(rt, first_tick(settings, factory))
    assert post_of(factory, post_id).status is S.AWAITING_APPROVAL
    with session_scope(factory) as s:
        dispatches = approve(s, post_id, settings=settings, now=NOW, actor="editor")
    drain(rt, dispatches)
    assert post_of(factory, post_id).status is S.PUBLISHED


def test_the_outbox_target_of_an_influencer_is_used(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    custom = settings.data_dir / "elsewhere"
    with session_scope(factory) as s:
        s.add(
            PublishTarget(
                influencer_id=influencer_id,
                name="mia-outbox",
                kind="outbox",
                config={"path": str(custom)},
            )
        )
    post_id = new_post(factory)
    drain(make_runtime(settings, factory), first_tick(settings, factory))
    assert (custom / "mia" / f"post-{post_id:06d}" / "caption.txt").is_file()


def test_publishing_waits_for_its_time(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory, at=NOW + timedelta(seconds=60), lead=30)
    dispatches = first_tick(settings, factory)
    rt = make_runtime(settings, factory)
    follow = run_step(rt, dispatches[0].step, dispatches[0].post_id, dispatches[0].token)
    render = run_step(rt, follow[0].step, follow[0].post_id, follow[0].token)
    assert [(d.step, d.eta) for d in render] == [(Step.PUBLISH, NOW + timedelta(seconds=60))]


@dataclass
class CountingGenerator:
    name: str = "counting"
    calls: list[int] = field(default_factory=list)

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        self.calls.append(len(requests))
        return PreviewGenerator().generate(requests)


def test_posts_claimed_together_share_one_generator_call(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    ids = [new_post(factory, at=NOW - timedelta(seconds=i)) for i in range(3)]  # one per instant
    dispatches = first_tick(settings, factory)
    assert len({(d.token, d.batch_key) for d in dispatches}) == 1
    generator = CountingGenerator()
    rt = make_runtime(settings, factory, generator=generator)
    follow = run_generate(rt, [d.post_id for d in dispatches], dispatches[0].token)
    assert generator.calls == [3]
    assert sorted(d.post_id for d in follow) == ids
    assert all(post_of(factory, i).status is S.RENDERING for i in ids)


def test_a_failed_batch_settles_every_post_in_it(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    ids = [new_post(factory, at=NOW - timedelta(seconds=i)) for i in range(2)]  # one per instant
    dispatches = first_tick(settings, factory)
    rt = make_runtime(settings, factory, generator=FlakyGenerator(failures=1))
    assert run_generate(rt, ids, dispatches[0].token) == []
    assert [(post_of(factory, i).status, post_of(factory, i).attempts) for i in ids] == [
        (S.PLANNED, 1),
        (S.PLANNED, 1),
    ]


def test_posts_of_different_sizes_are_not_batched_together(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    for seconds, fmt in enumerate(["feed_portrait", "story", "feed_portrait"]):
        new_post(factory, at=NOW - timedelta(seconds=seconds), formats=[fmt])
    groups = batch_dispatches(first_tick(settings, factory), 4)
    assert sorted(len(g) for g in groups) == [1, 2]


def test_a_step_that_fails_after_the_post_was_cancelled_changes_nothing(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    (d,) = first_tick(settings, factory)

    class CancelledMidway(FlakyGenerator):
        def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
            with session_scope(factory) as s:
                cancel(s, post_id, actor="editor")
            return super().generate(requests)

    assert (
        run_step(
            make_runtime(settings, factory, generator=CancelledMidway(9)),
            d.step,
            d.post_id,
            d.token,
        )
        == []
    )
    assert post_of(factory, post_id).status is S.CANCELLED


def test_a_publisher_that_lost_its_lease_cannot_call_out_again(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)

    class Overtaken(RecordingPublisher):
        def publish(self, request: PublishRequest, checkpoint: Checkpoint) -> PublishResult:
            with session_scope(factory) as s:  # the reconciler gave the post to another run
                s.execute(update(Post).values(lease_owner="run-someone-else"))
            checkpoint("publish_requested", "c-1")  # before the irreversible call
            raise AssertionError("unreachable: the checkpoint must stop this run")

    drain(make_runtime(settings, factory, publisher=Overtaken()), first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert (post.status, post.lease_owner) == (S.PUBLISHING, "run-someone-else")
    with factory() as s:
        assert s.scalars(select(PublishAttempt.publish_requested)).one() is None


def test_tries_are_counted_per_step(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    rt = make_runtime(
        settings, factory, generator=FlakyGenerator(failures=settings.max_attempts - 1)
    )
    for _ in range(settings.max_attempts):
        with session_scope(factory) as s:
            s.execute(update(Post).values(next_attempt_at=None))
        drain(rt, first_tick(settings, factory))
    post = post_of(factory, post_id)
    assert (post.status, post.attempts) == (S.PUBLISHED, 0)


def test_a_post_without_images_is_never_published(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    with session_scope(factory) as s:
        s.execute(update(Post).values(status=S.FAILED))
        dispatch = trigger(s, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="editor")
    drain(make_runtime(settings, factory), [dispatch])
    post = post_of(factory, post_id)
    assert post.status is S.FAILED and "no rendered images" in (post.last_error or "")
    assert not settings.outbox_dir.exists()


def test_a_person_settles_an_unknown_post(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    publisher = RecordingPublisher(fail_with=OutcomeUnknown("answer lost"))
    drain(make_runtime(settings, factory, publisher=publisher), first_tick(settings, factory))
    with session_scope(factory) as s:
        resolve_unknown(
            s,
            post_id,
            answer=Answer(published=True, media_id="1789"),
            publisher_factory=lambda target: publisher,
            now=NOW,
            actor="editor",
        )
    post = post_of(factory, post_id)
    assert (post.status, post.external_id) == (S.PUBLISHED, "1789")


def test_regenerating_drops_an_unfinished_publish_of_the_old_images(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    publisher = RecordingPublisher(fail_with=ConnectionError("reset by peer"))
    rt = make_runtime(settings, factory, publisher=publisher)
    drain(rt, first_tick(settings, factory))  # a container was made for generation 1
    with session_scope(factory) as s:
        dispatch = trigger(s, post_id, Step.GENERATE, settings=settings, now=NOW, actor="editor")
    publisher.fail_with = None
    drain(rt, [dispatch])
    (request,) = publisher.sent
    assert request.resume == {}  # a new container for the new images
    assert post_of(factory, post_id).generation == 2


def test_a_post_that_may_be_out_cannot_be_regenerated(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory)
    drain(
        make_runtime(
            settings, factory, publisher=RecordingPublisher(fail_with=ConnectionError("lost"))
        ),
        first_tick(settings, factory),
    )
    with session_scope(factory) as s:
        s.execute(update(PublishAttempt).values(publish_requested="c-1"))
    with (
        session_scope(factory) as s,
        pytest.raises(InputError, match="may already be on Instagram"),
    ):
        trigger(s, post_id, Step.GENERATE, settings=settings, now=NOW, actor="editor")


def test_a_carousel_post_goes_out_with_all_its_images_at_one_ratio(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    post_id = new_post(factory, images=3, formats=["feed_square"])
    drain(make_runtime(settings, factory), first_tick(settings, factory))
    assert post_of(factory, post_id).status is S.PUBLISHED
    folder = settings.outbox_dir / "mia" / f"post-{post_id:06d}"
    images = sorted(p.name for p in folder.glob("*.jpg"))
    assert images == [f"0{i}-carousel_0{i}_feed_square.jpg" for i in (1, 2, 3)]
    manifest = json.loads((folder / "post.json").read_text())
    assert manifest["media_type"] == "carousel"
    with factory() as s:
        raws = s.scalars(
            select(Asset.meta).where(Asset.post_id == post_id, Asset.kind == AssetKind.RAW)
        ).all()
    assert len({meta["seed"] for meta in raws}) == 3  # one seed per image


@pytest.mark.parametrize(
    ("images", "formats", "needle"),
    [
        (11, ["feed_square"], "2-10 images"),
        (3, ["story"], "cannot be a story"),
    ],
)
def test_a_carousel_that_instagram_would_refuse_is_refused_up_front(
    session: Session, influencer_id: int, images: int, formats: list[str], needle: str
) -> None:
    with pytest.raises(InputError, match=needle):
        add_post(session, images=images, formats=formats)
