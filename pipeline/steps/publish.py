"""The publish step: an attempt row is committed before any external call, then resumed.

A post with a succeeded attempt is never sent again; an unfinished attempt hands its recorded
progress (e.g. an Instagram container id) to the publisher instead of starting over.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    Asset,
    AssetKind,
    AttemptStatus,
    Influencer,
    Post,
    PostStatus,
    PublishAttempt,
    PublishTarget,
    TargetKind,
)
from pipeline.db import session_scope
from pipeline.errors import (
    PermanentPublishError,
    PreviewHeld,
    TargetUnusable,
)
from pipeline.media.storage import LocalStorage
from pipeline.media.urls import MediaLinks
from pipeline.publishers.base import MediaItem, Publisher, PublishRequest, PublishResult
from pipeline.publishers.targets import resolve_target
from pipeline.steps.attempts import (
    RESUME_KEYS,
    attempt_checkpoint,
    finish_attempt,
    known_media_ids,
)
from pipeline.steps.claims import Dispatch
from pipeline.steps.lease import Lease, run_leased
from pipeline.steps.moves import Step
from pipeline.steps.previews import image_provenance, preview_refusal
from pipeline.steps.runtime import Runtime

__all__ = ["URL_KINDS", "PublishJob", "prepare_publish", "run_publish"]


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishJob:
    request: PublishRequest
    target_id: int | None
    target_kind: TargetKind
    already: PublishResult | None  # an earlier attempt succeeded: record it, send nothing


URL_KINDS = frozenset({TargetKind.INSTAGRAM, TargetKind.WEBHOOK})


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
    session: Session,
    post: Post,
    *,
    storage: LocalStorage,
    links: MediaLinks | None,
    now: datetime,
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
    # Placeholders never go to Instagram or a webhook. An attempt that may be out is resumed
    # all the same: asking its container is how it ends published or unknown.
    in_doubt = attempt is not None and attempt.publish_requested is not None
    held = None if done or in_doubt else preview_refusal(session, post, target)
    if held:
        raise PreviewHeld(held)
    if attempt is None:
        attempt = PublishAttempt(
            id=str(uuid.uuid4()),
            post_id=post.id,
            target_id=target.id if target else None,
            target_kind=kind,
            started_at=now,
        )
        session.add(attempt)
    media = _media(session, post, storage, links if kind in URL_KINDS else None)
    if not media and done is None:
        raise PermanentPublishError(
            f"post {post.id} has no rendered images: run `ryla post generate {post.id}` first"
        )
    # The first attempt's id (a uuid: unique across databases) and the images' generation.
    first = attempts[0] if attempts else attempt
    request = replace(
        _request(session, post, attempt, media), delivery_key=f"{first.id}-g{post.generation}"
    )
    already = PublishResult(done.external_id or "") if done else None
    return PublishJob(request, target.id if target else None, kind, already)


def _request(
    session: Session, post: Post, attempt: PublishAttempt, media: tuple[MediaItem, ...]
) -> PublishRequest:
    influencer = session.get_one(Influencer, post.influencer_id)
    made = image_provenance(session, post)
    return PublishRequest(
        post_id=post.id,
        attempt_id=attempt.id,
        handle=influencer.handle,
        caption=post.caption,
        alt_text=post.alt_text,
        media_type=post.media_type.value,
        media=media,
        publish_at=post.publish_at,
        metadata={
            "scene": post.scene,
            "environment": post.environment,
            "seed": post.seed,
            "generator": ",".join(made.generators),  # placeholders say so, on a test target
            "preview": made.placeholders,
        },
        resume={k: getattr(attempt, k) for k in RESUME_KEYS if getattr(attempt, k)},
        not_before=attempt.started_at,
        known_media_ids=known_media_ids(session, post, since=attempt.started_at),
    )


# --- run: the three phases under the post's lease -------------------------------------------


def run_publish(rt: Runtime, post_id: int, token: str) -> list[Dispatch]:
    """Publish one claimed post, resuming its open attempt if it has one."""
    return run_leased(rt, Step.PUBLISH, post_id, token, _publish)


def _publish(rt: Runtime, lease: Lease) -> None:
    post_id = lease.post_id
    links = MediaLinks(rt.settings, rt.clock())
    with session_scope(rt.session_factory) as session:
        post = session.get_one(Post, post_id)
        job = prepare_publish(session, post, storage=rt.storage, links=links, now=rt.clock())
        target = session.get(PublishTarget, job.target_id) if job.target_id else None
    # The attempt row is committed now, before the publisher makes any external call.
    attempt_id = job.request.attempt_id
    if job.already is not None:
        result = job.already
    else:
        publisher = _usable_publisher(rt, target)
        checkpoint = attempt_checkpoint(
            rt.session_factory,
            attempt_id,
            post_id=post_id,
            run_id=lease.run_id,
            settings=rt.settings,
            clock=rt.clock,
        )
        result = publisher.publish(job.request, checkpoint)
    # Success and the move to published commit together: no worker can die between the two
    # and leave a live post that recovery would read as unpublished.
    with session_scope(rt.session_factory) as session:
        finish_attempt(
            session, attempt_id, status=AttemptStatus.SUCCEEDED, now=rt.clock(), result=result
        )
        values = {
            "published_at": rt.clock(),
            "external_id": result.external_id,
            "permalink": result.permalink,
            "last_error": None,
            "attempts": 0,
        }
        lease.finish(rt, session, PostStatus.PUBLISHED, values)
    log.info("post %s: published to %s as %s", post_id, job.target_kind, result.external_id)


def _usable_publisher(rt: Runtime, target: PublishTarget | None) -> Publisher:
    if target is not None and target.needs_reauth:
        raise TargetUnusable(
            f"publish target {target.name!r} needs re-authorisation: "
            "enter a new token with `ryla target token`"
        )
    try:
        return rt.publisher_factory(target)
    except ValueError as exc:  # missing settings, or secrets the key cannot open
        raise TargetUnusable(f"publish target {target.name if target else '-'!r}: {exc}") from None
