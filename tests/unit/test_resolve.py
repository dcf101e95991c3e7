"""Every door to a post that may be out honours the rule: publishing it again, regenerating or
cancelling it is refused with the reason; settling it asks Instagram before a person's answer
is recorded; pauses and deleted calendars leave it to settle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import AttemptStatus, Post, PostStatus, PublishAttempt, TargetKind
from pipeline.db import session_scope
from pipeline.errors import InputError, TransientPublishError
from pipeline.planning.holds import delete_calendar, pause_influencer, resume_influencer
from pipeline.publishers.base import Checkpoint, PublishRequest, PublishResult, Verdict
from pipeline.settings import Settings
from pipeline.steps.moves import Step
from pipeline.steps.resolve import Answer, Resolution, resolve_unknown
from pipeline.steps.triggers import cancel, trigger
from tests.calendar_kit import make_calendar
from tests.conftest import NOW, add_post

S = PostStatus


@dataclass
class AskedPublisher:
    """Instagram as far as resolving needs it: what the container says, which media exist."""

    verdict: Verdict = field(default_factory=lambda: Verdict(None))
    existing: set[str] = field(default_factory=set)
    unreachable: bool = False
    kind: str = "instagram"
    asked: list[PublishRequest] = field(default_factory=list)

    def publish(self, request: PublishRequest, checkpoint: Checkpoint) -> PublishResult:
        raise AssertionError("resolving never publishes")

    def verify(self, request: PublishRequest) -> Verdict:
        if self.unreachable:
            raise TransientPublishError("Instagram container status: could not reach the host")
        self.asked.append(request)
        return self.verdict

    def media_exists(self, media_id: str) -> bool:
        return media_id in self.existing


@dataclass
class Unaskable:
    """A webhook: nothing to ask."""

    kind: str = "webhook"

    def publish(self, request: PublishRequest, checkpoint: Checkpoint) -> PublishResult:
        raise AssertionError("resolving never publishes")


def in_doubt(
    session: Session, status: PostStatus = S.UNKNOWN, attempt=AttemptStatus.UNKNOWN
) -> int:  # type: ignore[no-untyped-def]
    """A post whose media_publish of container c-1 may have reached Instagram."""
    post_id = add_post(session, at=NOW - timedelta(minutes=5))
    session.execute(update(Post).where(Post.id == post_id).values(status=status))
    session.add(
        PublishAttempt(
            id=f"a-{post_id}",
            post_id=post_id,
            target_kind=TargetKind.INSTAGRAM,
            status=attempt,
            container_id="c-1",
            publish_requested="c-1",
            started_at=NOW - timedelta(minutes=5),
        )
    )
    session.flush()
    return post_id


def resolve(session: Session, post_id: int, answer: Answer, publisher: object) -> Resolution:
    return resolve_unknown(
        session,
        post_id,
        answer=answer,
        publisher_factory=lambda target: publisher,  # type: ignore[arg-type,return-value]
        now=NOW,
        actor="editor",
    )


def state(session: Session, post_id: int) -> tuple[PostStatus, AttemptStatus, str | None]:
    session.expire_all()
    post = session.get_one(Post, post_id)
    attempt = session.scalars(select(PublishAttempt).where(PublishAttempt.post_id == post_id)).one()
    return post.status, attempt.status, attempt.publish_requested


# --- publishing, regenerating, cancelling ---------------------------------------------------


def test_publishing_an_unknown_post_again_is_refused_with_the_reason(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    with pytest.raises(InputError, match=r"container c-1 was sent.*could post it twice"):
        trigger(session, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="editor")
    assert state(session, post_id)[0] is S.UNKNOWN


def test_publishing_a_failed_post_that_may_be_out_is_refused(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    """A post failed by code from before the rule (issue 10, item 1) is live: never again."""
    post_id = in_doubt(session, S.FAILED, AttemptStatus.FAILED)
    with pytest.raises(InputError, match=f"ryla post resolve {post_id}"):
        trigger(session, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="editor")


def test_a_ready_post_whose_open_attempt_is_in_doubt_resumes_it(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    post_id = in_doubt(session, S.READY, AttemptStatus.STARTED)
    dispatch = trigger(session, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="e")
    assert (dispatch.step, state(session, post_id)[1]) == (Step.PUBLISH, AttemptStatus.STARTED)


@pytest.mark.parametrize("step", [Step.GENERATE, Step.RENDER])
def test_new_images_for_a_post_that_may_be_out_are_refused(
    session: Session, settings: Settings, influencer_id: int, step: Step
) -> None:
    post_id = in_doubt(session, S.FAILED, AttemptStatus.FAILED)
    with pytest.raises(InputError, match="new images cannot replace what may be out"):
        trigger(session, post_id, step, settings=settings, now=NOW, actor="editor")


def test_a_post_that_may_be_out_cannot_be_cancelled(session: Session, influencer_id: int) -> None:
    post_id = in_doubt(session, S.READY, AttemptStatus.STARTED)
    with pytest.raises(InputError, match="cannot be cancelled"):
        cancel(session, post_id, actor="editor")
    assert state(session, post_id)[0] is S.READY


def test_resuming_never_marks_missed_a_post_whose_publish_is_in_flight(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    pause_influencer(session=session, handle="mia", actor="t")
    post_id = in_doubt(session, S.READY, AttemptStatus.STARTED)
    later = NOW + timedelta(hours=3)
    report = resume_influencer(
        session=session, handle="mia", settings=settings, now=later, actor="t"
    )
    assert report.missed == 0 and state(session, post_id)[0] is S.READY


def test_deleting_a_calendar_leaves_a_post_that_may_be_out_to_settle(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    calendar = make_calendar(session, settings, days="daily", times="13:00")
    post_id = in_doubt(session, S.READY, AttemptStatus.STARTED)
    session.execute(update(Post).where(Post.id == post_id).values(calendar_id=calendar.id))
    deleted = delete_calendar(session=session, handle="mia", name="main", actor="t")
    assert (deleted.cancelled, deleted.in_flight) == (0, 1)
    assert state(session, post_id)[0] is S.READY


# --- resolving: Instagram first ------------------------------------------------------------


def test_resolving_asks_instagram_and_records_the_media_it_reports(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    asked = AskedPublisher(Verdict(True, "17900000000000042", "container c-1 is PUBLISHED"))
    outcome = resolve(session, post_id, Answer(published=None), asked)
    assert outcome.status is S.PUBLISHED and "17900000000000042" in outcome.message
    assert state(session, post_id)[:2] == (S.PUBLISHED, AttemptStatus.SUCCEEDED)
    assert session.get_one(Post, post_id).external_id == "17900000000000042"
    [request] = asked.asked
    assert request.resume["publish_requested"] == "c-1"
    assert request.not_before == NOW - timedelta(minutes=5)


def test_not_published_is_refused_when_instagram_shows_the_post(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    asked = AskedPublisher(Verdict(True, "17900000000000042", "container c-1 is PUBLISHED"))
    with pytest.raises(InputError, match=r"it is on Instagram.*nothing was changed"):
        resolve(session, post_id, Answer(published=False), asked)
    assert state(session, post_id)[0] is S.UNKNOWN


def test_not_published_with_instagram_agreeing_lets_the_post_be_published_again(
    session: Session, settings: Settings, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    asked = AskedPublisher(Verdict(False, None, "container c-1 is FINISHED"))
    outcome = resolve(session, post_id, Answer(published=False), asked)
    assert outcome.status is S.FAILED
    assert state(session, post_id) == (S.FAILED, AttemptStatus.FAILED, None)
    trigger(session, post_id, Step.PUBLISH, settings=settings, now=NOW, actor="editor")
    assert session.get_one(Post, post_id).status is S.PUBLISHING


def test_without_an_answer_nothing_changes_and_the_person_is_told_what_to_do(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    asked = AskedPublisher(Verdict(False, None, "container c-1 is FINISHED"))
    outcome = resolve(session, post_id, Answer(published=None), asked)
    assert outcome.status is None
    assert "container c-1 is FINISHED" in outcome.message and "--not-published" in outcome.message
    assert state(session, post_id)[0] is S.UNKNOWN


def test_a_published_container_whose_media_cannot_be_told_needs_the_persons_id(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    asked = AskedPublisher(Verdict(True, None, "2 media fit it"), existing={"1790"})
    assert resolve(session, post_id, Answer(published=None), asked).status is None
    with pytest.raises(InputError, match="no media 1791"):
        resolve(session, post_id, Answer(published=True, media_id="1791"), asked)
    assert resolve(session, post_id, Answer(True, "1790"), asked).status is S.PUBLISHED


def test_published_by_hand_needs_a_media_id_that_exists(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    asked = AskedPublisher(Verdict(False, None, "container c-1 is EXPIRED"), existing={"1790"})
    with pytest.raises(InputError, match="posted it by hand, pass its --media-id"):
        resolve(session, post_id, Answer(published=True), asked)
    with pytest.raises(InputError, match="no media 1791"):
        resolve(session, post_id, Answer(published=True, media_id="1791"), asked)
    assert resolve(session, post_id, Answer(True, "1790"), asked).status is S.PUBLISHED
    assert session.get_one(Post, post_id).external_id == "1790"


def test_a_media_id_other_than_instagrams_is_refused(session: Session, influencer_id: int) -> None:
    post_id = in_doubt(session)
    asked = AskedPublisher(Verdict(True, "1790", "container c-1 is PUBLISHED"))
    with pytest.raises(InputError, match="is 1790, not 1791"):
        resolve(session, post_id, Answer(published=True, media_id="1791"), asked)


def test_an_unreachable_instagram_changes_nothing_unless_the_check_is_skipped(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    asked = AskedPublisher(unreachable=True)
    with pytest.raises(InputError, match=r"could not be asked.*--skip-check"):
        resolve(session, post_id, Answer(published=False), asked)
    assert state(session, post_id)[0] is S.UNKNOWN
    outcome = resolve(session, post_id, Answer(published=False, skip_check=True), asked)
    assert outcome.status is S.FAILED


def test_a_target_that_cannot_be_asked_takes_the_persons_answer(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session)
    outcome = resolve(session, post_id, Answer(published=True, media_id="hook-1"), Unaskable())
    assert outcome.status is S.PUBLISHED


def test_only_unknown_posts_are_resolved(
    factory: sessionmaker[Session], influencer_id: int
) -> None:
    with session_scope(factory) as s:
        post_id = add_post(s)
    with factory() as s, pytest.raises(InputError, match="only unknown posts"):
        resolve(s, post_id, Answer(published=True), Unaskable())


def test_a_failed_post_that_may_be_out_is_settled_like_an_unknown_one(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session, S.FAILED, AttemptStatus.FAILED)
    asked = AskedPublisher(Verdict(True, "1790", "container c-1 is PUBLISHED"))
    assert resolve(session, post_id, Answer(published=None), asked).status is S.PUBLISHED
    assert state(session, post_id)[:2] == (S.PUBLISHED, AttemptStatus.SUCCEEDED)


def test_a_post_settled_by_someone_else_while_instagram_was_asked_changes_nothing(
    session: Session, influencer_id: int
) -> None:
    post_id = in_doubt(session)

    class SettledMeanwhile(AskedPublisher):
        def verify(self, request: PublishRequest) -> Verdict:
            # Another resolve committed "not published" while this one waited for Instagram.
            settled = update(Post).where(Post.id == post_id).values(status=S.FAILED)
            session.execute(settled.execution_options(synchronize_session=False))
            return super().verify(request)

    asked = SettledMeanwhile(Verdict(True, "17900000000000042", "container c-1 is PUBLISHED"))
    with pytest.raises(InputError, match="settled by someone else while Instagram was asked"):
        resolve(session, post_id, Answer(published=None), asked)
