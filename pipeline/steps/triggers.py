"""What people do to a post by hand: run a step now, approve or reject it, cancel it, edit its
caption (settling an unknown post lives in ``resolve``).

Each checks the post's state first and says, in one line, why a request does not apply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from models import AttemptStatus, Post, PostEvent, PostStatus, PublishAttempt, can_move
from pipeline.captions import MAX_CAPTION_CHARS, check_caption
from pipeline.errors import CaptionError, InputError, NotFound
from pipeline.settings import Settings
from pipeline.steps.attempts import attempt_in_doubt
from pipeline.steps.claims import Dispatch, claim, claim_due
from pipeline.steps.moves import Step, move

__all__ = ["approve", "cancel", "edit_caption", "reject", "trigger"]

S = PostStatus
TRIGGER_FROM: dict[Step, tuple[PostStatus, ...]] = {
    Step.GENERATE: (
        S.PLANNED,
        S.FAILED,
        S.GENERATED,
        S.READY,
        S.AWAITING_APPROVAL,
        S.PREVIEW_ONLY,
    ),
    Step.RENDER: (S.GENERATED, S.FAILED, S.READY, S.AWAITING_APPROVAL),
    # From preview_only once its target accepts previews; the publish step checks again.
    Step.PUBLISH: (S.READY, S.APPROVED, S.FAILED, S.PREVIEW_ONLY),
}


def _post(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"unknown post {post_id}: list posts with `ryla status`", field="post_id")
    return post


def trigger(
    session: Session, post_id: int, step: Step, *, settings: Settings, now: datetime, actor: str
) -> Dispatch:
    """Claim ``step`` for the post right away (a person's retry starts with fresh attempts)."""
    post = _post(session, post_id)
    allowed = TRIGGER_FROM[step]
    _refuse_if_may_be_out(session, post, step)
    if post.status not in allowed:
        raise InputError(
            f"post {post_id} is {post.status}: {step} applies to posts that are "
            f"{', '.join(allowed)}"
        )
    if step is not Step.PUBLISH:
        _supersede_open_attempt(session, post, now)
    claimed = claim(
        session,
        [post_id],
        step=step,
        expected=post.status,
        now=now,
        grace_seconds=settings.claim_grace_seconds,
        actor=actor,
    )
    if not claimed:  # the beat or a worker moved it since it was read
        raise InputError(
            f"post {post_id} is {_status_now(session, post_id)} now: it moved on while "
            f"{step} was asked; look at it with `ryla post show {post_id}`"
        )
    (dispatch,) = claimed
    # New images need a new approval; a person's retry starts with fresh tries.
    reset: dict[str, object] = {"attempts": 0}
    if step is not Step.PUBLISH:
        reset["approved_at"] = None
    session.execute(update(Post).where(Post.id == post_id).values(reset))
    return dispatch


def _refuse_if_may_be_out(session: Session, post: Post, step: Step) -> None:
    """The rule: a post whose media_publish may have reached the target is never sent again
    through a new attempt (a new container) nor given new images, whatever state it shows.

    An open attempt in doubt is resumed by a publish (it asks the same container first).
    """
    doubt = attempt_in_doubt(session, post.id)
    resumable = step is Step.PUBLISH and doubt is not None and doubt.status is AttemptStatus.STARTED
    if post.status is not S.UNKNOWN and (doubt is None or resumable):
        return
    sent = f" (container {doubt.publish_requested} was sent for publishing)" if doubt else ""
    again = "publishing it again could post it twice"
    if step is not Step.PUBLISH:
        again = "new images cannot replace what may be out"
    settle = f"`ryla post resolve {post.id}` asks Instagram and records what it says"
    if doubt is not None and doubt.status is AttemptStatus.STARTED:
        settle = f"let that publish settle first (`ryla post show {post.id}`)"
    raise InputError(f"post {post.id} may already be on Instagram{sent}: {again}; {settle}")


def _supersede_open_attempt(session: Session, post: Post, now: datetime) -> None:
    """New images make an unfinished publish of the old ones moot (one that may be out was
    refused before)."""
    attempt = session.scalars(
        select(PublishAttempt).where(
            PublishAttempt.post_id == post.id, PublishAttempt.status == AttemptStatus.STARTED
        )
    ).first()
    if attempt is None:
        return
    attempt.status = AttemptStatus.FAILED
    attempt.finished_at = now
    attempt.error = "superseded: the post is being generated or rendered again"


def approve(
    session: Session, post_id: int, *, settings: Settings, now: datetime, actor: str
) -> list[Dispatch]:
    _decide(session, post_id, "approved", to=S.APPROVED, actor=actor, values={"approved_at": now})
    return claim_due(session, settings=settings, now=now, post_id=post_id, actor=actor)


def _decide(session: Session, post_id: int, verb: str, **move_args: Any) -> None:
    """Move a post awaiting approval, or say what it is now: the state read first may be stale
    (an approve and a reject at once), so only the conditional move decides."""
    post = _post(session, post_id)
    if post.status is S.AWAITING_APPROVAL and move(
        session, post_id, expected=S.AWAITING_APPROVAL, **move_args
    ):
        return
    raise InputError(
        f"post {post_id} is {_status_now(session, post_id)}: only posts awaiting approval "
        f"can be {verb}"
    )


def _status_now(session: Session, post_id: int) -> PostStatus:
    """The committed state, not the one this session loaded before another writer moved it."""
    return session.execute(select(Post.status).where(Post.id == post_id)).scalar_one()


def cancel(session: Session, post_id: int, *, actor: str, reason: str = "") -> None:
    post = _post(session, post_id)
    if doubt := attempt_in_doubt(session, post_id):
        raise InputError(
            f"post {post_id} may already be on Instagram (container {doubt.publish_requested} "
            "was sent for publishing): it cannot be cancelled; let that publish settle "
            f"(`ryla post show {post_id}`)"
        )
    if not can_move(post.status, S.CANCELLED) or not move(
        session,
        post_id,
        expected=post.status,
        to=S.CANCELLED,
        actor=actor,
        detail=reason,
        values={"lease_owner": None, "lease_expires_at": None},
    ):
        status = _status_now(session, post_id)
        raise InputError(f"post {post_id} is {status} and can no longer be cancelled")


MAX_NOTE_CHARS = 1000


def reject(session: Session, post_id: int, *, note: str, actor: str) -> None:
    """A person turned the post down: it will not go out; the note says why."""
    note = note.strip()
    if not note or len(note) > MAX_NOTE_CHARS:
        raise InputError(
            f"note of {len(note)} characters: say in 1-{MAX_NOTE_CHARS} characters why "
            "the post is rejected"
        )
    _decide(
        session,
        post_id,
        "rejected",
        to=S.CANCELLED,
        actor=actor,
        detail=f"rejected: {note}",
        values={"last_error": f"rejected by {actor}: {note}"},
    )


# Before a worker renders, the caption's text is edited (the template and hashtags join it at
# render time); once rendered, the finished caption itself is.
_TEXT_EDITABLE = (S.PLANNED, S.GENERATED)
_CAPTION_EDITABLE = (S.READY, S.AWAITING_APPROVAL, S.APPROVED, S.FAILED)


def edit_caption(session: Session, post_id: int, *, text: str, actor: str) -> None:
    post = _post(session, post_id)
    text = text.strip()
    if post.status not in (*_TEXT_EDITABLE, *_CAPTION_EDITABLE):
        raise InputError(
            f"post {post_id} is {post.status}: its caption can change only before publishing"
        )
    if len(text) > MAX_CAPTION_CHARS:
        raise InputError(
            f"caption of {len(text):,} characters is too long: Instagram takes "
            f"{MAX_CAPTION_CHARS:,}, shorten it"
        )
    try:
        check_caption(text, alt_text=post.alt_text)
    except CaptionError as exc:
        raise InputError(str(exc)) from None
    if doubt := attempt_in_doubt(session, post_id):
        raise InputError(
            f"post {post_id} may already be on Instagram (container {doubt.publish_requested} "
            "was sent for publishing): its caption cannot change now; let that publish settle "
            f"(`ryla post show {post_id}`)"
        )
    values: dict[str, object] = {"caption_text": text}
    if post.status in _CAPTION_EDITABLE:
        values["caption"] = text
    edited = session.execute(
        update(Post).where(Post.id == post_id, Post.status == post.status).values(values)
    )
    if edited.rowcount != 1:  # type: ignore[attr-defined]  # claimed or moved meanwhile
        raise InputError(
            f"post {post_id} is {_status_now(session, post_id)} now: it moved on while its "
            f"caption was edited; look at it with `ryla post show {post_id}` and try again"
        )
    # Not a move: the audit row keeps the state and says what changed.
    session.execute(
        insert(PostEvent).values(
            post_id=post_id,
            from_status=post.status,
            to_status=post.status,
            actor=actor,
            detail="caption edited",
        )
    )
