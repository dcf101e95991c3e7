"""The publish step: an attempt row is committed before any external call, then resumed.

A post with a succeeded attempt is never sent again; an unfinished attempt hands its recorded
progress (e.g. an Instagram container id) to the publisher instead of starting over.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models import (
    Asset,
    AssetKind,
    AttemptStatus,
    Influencer,
    Post,
    PublishAttempt,
    PublishTarget,
    TargetKind,
)
from pipeline.db import session_scope
from pipeline.dispatch import LeaseLost
from pipeline.media_urls import sign_media_url
from pipeline.publishers.base import (
    Checkpoint,
    MediaItem,
    PermanentPublishError,
    PublishRequest,
    PublishResult,
)
from pipeline.settings import Settings, load_secret_key
from pipeline.storage import LocalStorage

__all__ = [
    "RESUME_KEYS",
    "MediaLinks",
    "PublishJob",
    "attempt_checkpoint",
    "finish_attempt",
    "prepare_publish",
    "resolve_target",
]


@dataclass(frozen=True)
class PublishJob:
    request: PublishRequest
    target_id: int | None
    target_kind: TargetKind
    already: PublishResult | None  # an earlier attempt succeeded: record it, send nothing


def resolve_target(session: Session, post: Post) -> PublishTarget | None:
    """The post's own target, else the influencer's first, else None (the default outbox)."""
    if post.publish_target_id is not None:
        return session.get_one(PublishTarget, post.publish_target_id)
    return session.scalars(
        select(PublishTarget)
        .where(PublishTarget.influencer_id == post.influencer_id)
        .order_by(PublishTarget.id)
        .limit(1)
    ).first()


# What a publisher may checkpoint, and so what an interrupted attempt resumes from.
RESUME_KEYS = ("container_id", "external_id", "publish_requested")
URL_KINDS = frozenset({TargetKind.INSTAGRAM, TargetKind.WEBHOOK})


@dataclass(frozen=True)
class MediaLinks:
    """Signed, expiring public URLs for the media that targets fetch (Instagram, webhooks)."""

    settings: Settings
    now: datetime

    def url(self, key: str) -> str:
        expires = self.now + timedelta(hours=self.settings.media_url_ttl_hours)
        secret = load_secret_key(self.settings)
        return sign_media_url(key, expires, secret, base_url=self.settings.public_base_url)


def _media(
    session: Session, post: Post, storage: LocalStorage, links: MediaLinks | None
) -> tuple[MediaItem, ...]:
    assets = session.scalars(
        select(Asset).where(
            Asset.post_id == post.id,
            Asset.generation == post.generation,
            Asset.kind == AssetKind.RENDITION,
        )
    ).all()
    order = {fmt: i for i, fmt in enumerate(post.formats)}
    return tuple(
        MediaItem(
            a.format,
            storage.path(a.storage_key),
            links.url(a.storage_key) if links else None,
            a.content_type,
            a.sha256,
        )
        # The post's formats first, in its order; carousel items by their numbered names.
        for a in sorted(assets, key=lambda a: (order.get(a.format, len(order)), a.format))
    )


def prepare_publish(
    session: Session, post: Post, *, storage: LocalStorage, links: MediaLinks | None
) -> PublishJob:
    """Find or create this post's attempt; the caller commits before calling out."""
    target = resolve_target(session, post)
    kind = target.kind if target else TargetKind.OUTBOX
    attempts = session.scalars(
        select(PublishAttempt)
        .where(PublishAttempt.post_id == post.id)
        .order_by(PublishAttempt.started_at)
    ).all()
    done = next((a for a in attempts if a.status is AttemptStatus.SUCCEEDED), None)
    attempt = done or next((a for a in attempts if a.status is AttemptStatus.STARTED), None)
    if attempt is None:
        attempt = PublishAttempt(
            id=str(uuid.uuid4()),
            post_id=post.id,
            target_id=target.id if target else None,
            target_kind=kind,
        )
        session.add(attempt)
    media = _media(session, post, storage, links if kind in URL_KINDS else None)
    if not media and done is None:
        raise PermanentPublishError(
            f"post {post.id} has no rendered images: run `ryla post generate {post.id}` first"
        )
    influencer = session.get_one(Influencer, post.influencer_id)
    request = PublishRequest(
        post_id=post.id,
        attempt_id=attempt.id,
        handle=influencer.handle,
        caption=post.caption,
        alt_text=post.alt_text,
        media_type=post.media_type.value,
        media=media,
        publish_at=post.publish_at,
        metadata={"scene": post.scene, "environment": post.environment, "seed": post.seed},
        resume={k: getattr(attempt, k) for k in RESUME_KEYS if getattr(attempt, k)},
    )
    already = PublishResult(done.external_id or "") if done else None
    return PublishJob(request, target.id if target else None, kind, already)


def attempt_checkpoint(
    factory: sessionmaker[Session],
    attempt_id: str,
    *,
    post_id: int,
    run_id: str,
    settings: Settings,
    clock: Callable[[], datetime],
) -> Checkpoint:
    """Durably record a publisher's progress before its next external call.

    Each checkpoint also renews this run's lease, and raises LeaseLost when another run holds
    it: a run that was presumed dead must not make the next, irreversible call.
    """

    def checkpoint(key: str, value: str) -> None:
        if key not in RESUME_KEYS:
            raise ValueError(f"cannot checkpoint {key!r}: one of {', '.join(RESUME_KEYS)}")
        with session_scope(factory) as session:
            renewed = session.execute(
                update(Post)
                .where(Post.id == post_id, Post.lease_owner == run_id)
                .values(lease_expires_at=clock() + timedelta(seconds=settings.lease_seconds))
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost(post_id)
            session.execute(
                update(PublishAttempt)
                .where(PublishAttempt.id == attempt_id)
                .values({key: value or None})  # "" clears a key
            )

    return checkpoint


def finish_attempt(
    session: Session,
    attempt_id: str,
    *,
    status: AttemptStatus,
    now: datetime,
    result: PublishResult | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, object] = {"status": status, "finished_at": now, "error": error}
    if result is not None:
        values["external_id"] = result.external_id
    session.execute(
        update(PublishAttempt)
        .where(PublishAttempt.id == attempt_id, PublishAttempt.status == AttemptStatus.STARTED)
        .values(values)
    )
