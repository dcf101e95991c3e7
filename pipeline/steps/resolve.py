"""Settling a post whose publish could not be verified: the target is asked first, and a person's
answer is recorded only when it does not contradict what the target says.

Instagram can be asked (the container's status, the media it made); webhook and outbox targets
cannot, so there the person's answer stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import AttemptStatus, Post, PostStatus, PublishAttempt, PublishTarget
from pipeline.errors import InputError, NotFound, PublishError
from pipeline.publishers.base import Publisher, PublishRequest, Verdict, Verifier
from pipeline.publishers.targets import resolve_target
from pipeline.steps.attempts import attempt_in_doubt, known_media_ids
from pipeline.steps.moves import move

__all__ = ["Answer", "Resolution", "resolve_unknown"]

S = PostStatus


@dataclass(frozen=True)
class Answer:
    """What a person found on the account: ``published`` None when they ask the target only."""

    published: bool | None
    media_id: str | None = None
    skip_check: bool = False  # record the answer without asking (the target is unreachable)


@dataclass(frozen=True)
class Resolution:
    status: PostStatus | None  # where the post went; None: nothing changed yet
    message: str  # one line for the person


def resolve_unknown(
    session: Session,
    post_id: int,
    *,
    answer: Answer,
    publisher_factory: Callable[[PublishTarget | None], Publisher],
    now: datetime,
    actor: str,
) -> Resolution:
    """Ask the target about the post's last attempt, then record the outcome both agree on."""
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"unknown post {post_id}: list posts with `ryla status`", field="post_id")
    doubt = attempt_in_doubt(session, post_id)
    # A failed post may be live too, when it failed before the rule that such posts never fail.
    if post.status is not S.UNKNOWN and not (post.status is S.FAILED and doubt is not None):
        raise InputError(
            f"post {post_id} is {post.status}: only unknown posts (and failed ones that may be "
            "out) need resolving"
        )
    attempt = doubt or _last_attempt(session, post_id)
    verdict = None
    if attempt is not None and not answer.skip_check:
        verdict = _ask(session, post, attempt, publisher_factory)
    return _settle(session, post, attempt, verdict, answer, now=now, actor=actor)


def _last_attempt(session: Session, post_id: int) -> PublishAttempt | None:
    return session.scalars(
        select(PublishAttempt)
        .where(
            PublishAttempt.post_id == post_id,
            PublishAttempt.status.in_([AttemptStatus.UNKNOWN, AttemptStatus.STARTED]),
        )
        .order_by(PublishAttempt.started_at.desc())
    ).first()


def _ask(
    session: Session,
    post: Post,
    attempt: PublishAttempt,
    publisher_factory: Callable[[PublishTarget | None], Publisher],
) -> tuple[Verdict, Verifier] | None:
    """What the target says, or None when it cannot be asked (a webhook, the outbox)."""
    try:
        publisher = publisher_factory(resolve_target(session, post))
    except ValueError as exc:  # missing settings, or secrets the key cannot open
        raise InputError(f"post {post.id}: its target cannot be asked ({exc})") from None
    if not isinstance(publisher, Verifier):
        return None
    request = PublishRequest(
        post_id=post.id,
        attempt_id=attempt.id,
        handle="",
        caption=post.caption,
        alt_text=post.alt_text,
        media_type=post.media_type.value,
        media=(),
        publish_at=post.publish_at,
        resume={
            "container_id": attempt.container_id,
            "publish_requested": attempt.publish_requested,
        },
        not_before=attempt.started_at,
        known_media_ids=known_media_ids(session, post, since=attempt.started_at),
    )
    try:
        return publisher.verify(request), publisher
    except PublishError as exc:
        raise InputError(
            f"post {post.id}: Instagram could not be asked ({exc}); nothing was changed: try "
            "again later, or add --skip-check to record your answer without asking"
        ) from None


def _settle(
    session: Session,
    post: Post,
    attempt: PublishAttempt | None,
    asked: tuple[Verdict, Verifier] | None,
    answer: Answer,
    *,
    now: datetime,
    actor: str,
) -> Resolution:
    verdict, verifier = asked if asked else (Verdict(None), None)
    said = f"{verdict.detail}; " if verdict.detail else ""
    if verdict.published is True and answer.published is not False:
        media_id = _media_id(post, verdict, verifier, answer)
        if media_id is None:
            return Resolution(
                None,
                f"post {post.id}: {said}find its media id on the account, then "
                f"`ryla post resolve {post.id} --published --media-id ID`",
            )
        return _published(session, post, attempt, media_id, said, now=now, actor=actor)
    if verdict.published is True:
        raise InputError(
            f"post {post.id}: {said}it is on Instagram, so it cannot be marked not published; "
            f"nothing was changed: `ryla post resolve {post.id} --published`"
        )
    if answer.published is None:
        return Resolution(None, _what_to_do(post, said))
    if answer.published:
        media_id = _hand_published(post, verdict, verifier, answer, said)
        return _published(session, post, attempt, media_id, said, now=now, actor=actor)
    return _not_published(session, post, attempt, said, now=now, actor=actor)


def _media_id(
    post: Post, verdict: Verdict, verifier: Verifier | None, answer: Answer
) -> str | None:
    if verdict.media_id and answer.media_id and verdict.media_id != answer.media_id:
        raise InputError(
            f"post {post.id}: Instagram's media for its container is {verdict.media_id}, not "
            f"{answer.media_id}; nothing was changed: check the id, or add --skip-check"
        )
    if verdict.media_id:
        return verdict.media_id
    if answer.media_id and verifier is not None and not verifier.media_exists(answer.media_id):
        raise InputError(
            f"post {post.id}: Instagram has no media {answer.media_id} on this account; "
            "nothing was changed: check the id"
        )
    return answer.media_id


def _hand_published(
    post: Post, verdict: Verdict, verifier: Verifier | None, answer: Answer, said: str
) -> str | None:
    """A person says it is out although the container was not published: by hand, then."""
    if verdict.published is False and not answer.media_id:
        raise InputError(
            f"post {post.id}: {said}if you posted it by hand, pass its --media-id; "
            "nothing was changed"
        )
    return _media_id(post, verdict, verifier, answer)


def _what_to_do(post: Post, said: str) -> str:
    return (
        f"post {post.id}: {said}look at the account, then `ryla post resolve {post.id} "
        "--not-published` (it can then be published again) or `--published --media-id ID`"
    )


def _published(
    session: Session,
    post: Post,
    attempt: PublishAttempt | None,
    media_id: str | None,
    said: str,
    *,
    now: datetime,
    actor: str,
) -> Resolution:
    external_id = media_id or post.external_id
    detail = f"{said}confirmed published".strip()
    if not move(
        session,
        post.id,
        expected=post.status,
        to=S.PUBLISHED,
        actor=actor,
        detail=detail,
        values={"published_at": now, "external_id": external_id, "last_error": None},
    ):
        _moved_meanwhile(post)
    if attempt is not None:
        _close(session, attempt, AttemptStatus.SUCCEEDED, detail, now, external_id=external_id)
    return Resolution(S.PUBLISHED, f"post {post.id}: published as {external_id or '-'}")


def _not_published(
    session: Session,
    post: Post,
    attempt: PublishAttempt | None,
    said: str,
    *,
    now: datetime,
    actor: str,
) -> Resolution:
    detail = f"{said}confirmed not published by a person"
    last_error = f"not published ({detail}); `ryla post publish {post.id}` sends it"
    if post.status is S.UNKNOWN:
        if not move(
            session,
            post.id,
            expected=S.UNKNOWN,
            to=S.FAILED,
            actor=actor,
            detail=detail,
            values={"last_error": last_error},
        ):
            _moved_meanwhile(post)
    else:  # already failed: only the doubt is lifted
        session.execute(update(Post).where(Post.id == post.id).values(last_error=last_error))
    if attempt is not None:
        # Settled: nothing of this attempt is out, so publishing again is allowed.
        _close(session, attempt, AttemptStatus.FAILED, detail, now, publish_requested=None)
    return Resolution(S.FAILED, f"post {post.id}: not published; `ryla post publish` sends it")


def _moved_meanwhile(post: Post) -> None:
    """Another resolve (or a worker's) settled it while Instagram was asked: nothing changes."""
    raise InputError(
        f"post {post.id} was settled by someone else while Instagram was asked: nothing was "
        f"changed; see `ryla post show {post.id}`"
    )


def _close(
    session: Session,
    attempt: PublishAttempt,
    status: AttemptStatus,
    error: str,
    now: datetime,
    **values: object,
) -> None:
    session.execute(
        update(PublishAttempt)
        .where(PublishAttempt.id == attempt.id)
        .values(status=status, error=error, finished_at=attempt.finished_at or now, **values)
    )
