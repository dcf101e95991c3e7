"""What a person (or an integration) asks of a post, through the same triggers as ``ryla post``:
regenerate, render, publish now, approve, reject, edit the caption, cancel, resolve ``unknown``.

Claims commit first, then go to the broker. A request sent with an ``Idempotency-Key`` is done
once per user and key (remembered for 24 hours); a repeat gets the first answer back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin.access import Principal
from admin.studio.core import Studio
from models import IdempotentRequest, Post
from pipeline.errors import InputError
from pipeline.steps.claims import Dispatch
from pipeline.steps.moves import Step
from pipeline.steps.resolve import Answer, resolve_unknown
from pipeline.steps.triggers import (
    approve,
    cancel,
    edit_caption,
    reject,
    trigger,
)

__all__ = [
    "ACTION_NAMES",
    "KEY_LIFETIME",
    "ActionIn",
    "Replayed",
    "fingerprint",
    "idempotent",
    "perform",
    "status_after",
]

_STEPS = {"generate": Step.GENERATE, "render": Step.RENDER, "publish": Step.PUBLISH}
ACTION_NAMES = (*_STEPS, "approve", "reject", "caption", "cancel", "resolve")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class ActionIn:
    name: str
    note: str = ""
    caption: str = ""
    published: bool | None = None
    media_id: str | None = None


def perform(
    session: Session, studio: Studio, post_id: int, action: ActionIn, *, actor: str
) -> list[Dispatch]:
    """Do one action on a post inside the caller's transaction; the claims it made come back."""
    now = studio.clock()
    settings = studio.settings
    if action.name in _STEPS:
        step = _STEPS[action.name]
        return [trigger(session, post_id, step, settings=settings, now=now, actor=actor)]
    if action.name == "approve":
        return approve(session, post_id, settings=settings, now=now, actor=actor)
    if action.name == "reject":
        reject(session, post_id, note=action.note, actor=actor)
    elif action.name == "caption":
        edit_caption(session, post_id, text=action.caption, actor=actor)
    elif action.name == "cancel":
        cancel(session, post_id, actor=actor, reason=action.note or f"cancelled by {actor}")
    elif action.name == "resolve":
        if action.published is None:
            raise InputError("published is missing: say whether the post is on the account")
        _resolve(session, studio, post_id, action, now=now, actor=actor)
    else:
        raise InputError(f"unknown action {action.name!r}: use {', '.join(ACTION_NAMES)}")
    return []


def _resolve(
    session: Session,
    studio: Studio,
    post_id: int,
    action: ActionIn,
    *,
    now: datetime,
    actor: str,
) -> None:
    """Instagram is asked first; an answer that contradicts it changes nothing and says why."""
    import httpx

    from pipeline.publishers import build_publisher

    settings = studio.settings
    timeout = httpx.Timeout(settings.http_timeout_seconds, connect=5.0)
    with httpx.Client(timeout=timeout) as client:
        outcome = resolve_unknown(
            session,
            post_id,
            answer=Answer(action.published, action.media_id),
            publisher_factory=lambda target: build_publisher(
                target, settings=settings, clock=studio.clock, client=client
            ),
            now=now,
            actor=actor,
        )
    if outcome.status is None:
        raise InputError(outcome.message)


class Replayed(Exception):
    """The key was used before: ``status_code`` and ``body`` are the first answer."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        super().__init__("replayed")
        self.status_code = status_code
        self.body = body


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


def _stored(session: Session, principal: Principal, key: str) -> IdempotentRequest | None:
    return session.scalars(
        select(IdempotentRequest).where(
            IdempotentRequest.user_id == principal.user_id, IdempotentRequest.key == key
        )
    ).first()


def idempotent(
    studio: Studio,
    principal: Principal,
    key: str | None,
    request_print: str,
    work: Callable[[Session], tuple[dict[str, Any], list[Dispatch]]],
    *,
    status_code: int = 202,
    queues: bool = True,
) -> dict[str, Any]:
    """Run ``work`` once per (user, key), send its claims, and answer with ``queued`` added;
    raise ``Replayed`` for a repeat of the same request. ``queues=False``: work that sends
    nothing (a new post), whose answer is its body alone.

    The key is written before the work, in the work's transaction: a twin sent at the same
    moment waits on it (the key is unique) and then gets this answer, never a second action
    nor the refusal a second action would meet.
    """
    if key is not None and not _KEY.match(key):
        raise InputError("Idempotency-Key must be 1-200 visible ASCII characters: send a UUID")
    try:
        with studio.session() as session:
            _replay(session, principal, key, request_print)
            held = _hold(session, studio, principal, key, request_print, status_code)
            body, dispatches = work(session)
            if held is not None:
                held.body = {**body, "queued": True} if queues else body
    except IntegrityError:
        # The same key committed by a concurrent twin: its answer is the answer.
        with studio.session() as session:
            _replay(session, principal, key, request_print)
        raise
    if not queues:
        return body
    queued = studio.dispatch(dispatches)
    if key is not None and not queued:
        with studio.session() as session:
            stored = _stored(session, principal, key)
            if stored is not None:
                stored.body = {**body, "queued": False}
    return {**body, "queued": queued}


def _hold(
    session: Session,
    studio: Studio,
    principal: Principal,
    key: str | None,
    request_print: str,
    status_code: int,
) -> IdempotentRequest | None:
    if key is None:
        return None
    # Keys are remembered for a day (as payment APIs do): the table stays small.
    stale = IdempotentRequest.created_at < studio.clock() - KEY_LIFETIME
    session.execute(delete(IdempotentRequest).where(stale))
    held = IdempotentRequest(
        user_id=principal.user_id,
        key=key,
        fingerprint=request_print,
        status_code=status_code,
        body={},
        created_at=studio.clock(),
    )
    session.add(held)
    session.flush()  # a twin's insert of the same key waits here until this one ends
    return held


def _replay(session: Session, principal: Principal, key: str | None, request_print: str) -> None:
    if key is None:
        return
    found = _stored(session, principal, key)
    if found is None:
        return
    if found.fingerprint != request_print:
        raise InputError(
            "Idempotency-Key was already used for another request: send a new key for a new request"
        )
    raise Replayed(found.status_code, found.body)


def status_after(session: Session, post_id: int) -> str:
    """The post's state as this transaction left it."""
    return str(session.scalar(select(Post.status).where(Post.id == post_id)))
