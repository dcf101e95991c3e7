"""The render step: caption first, then Instagram renditions and a thumbnail, recorded.

``prepare`` reads rows in a short transaction, ``perform`` runs with no transaction open, and
``record`` writes the result under the lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    Asset,
    AssetKind,
    Influencer,
    Post,
    PostStatus,
)
from pipeline.captions import Caption, build_alt_text, build_caption, caption_variables
from pipeline.db import session_scope
from pipeline.media.renditions import Rendition, render_carousel, render_set, render_thumbnail
from pipeline.media.storage import LocalStorage
from pipeline.steps.assets import StoredFile, asset_prefix, replace_assets
from pipeline.steps.claims import Dispatch
from pipeline.steps.lease import Lease, run_leased
from pipeline.steps.moves import Step
from pipeline.steps.previews import preview_refusal
from pipeline.steps.runtime import Runtime

__all__ = [
    "RenderJob",
    "RenderOutcome",
    "perform_render",
    "prepare_render",
    "record_render",
    "render_destination",
    "run_render",
]


@dataclass(frozen=True)
class RenderJob:
    post_id: int
    generation: int
    prefix: str
    raw_keys: tuple[str, ...]  # one, or a carousel's items in order
    formats: tuple[str, ...]
    caption_template: str
    caption_text: str
    variables: dict[str, str]
    default_hashtags: tuple[str, ...]
    post_hashtags: tuple[str, ...]
    alt_text: str
    needs_approval: bool
    held: str | None = None  # why the images may not go to the post's target (placeholders)


def prepare_render(session: Session, post: Post) -> RenderJob:
    influencer = session.get_one(Influencer, post.influencer_id)
    raw_keys = tuple(
        session.scalars(
            select(Asset.storage_key)
            .where(
                Asset.post_id == post.id,
                Asset.generation == post.generation,
                Asset.kind == AssetKind.RAW,
            )
            .order_by(Asset.format)
        )
    )
    alt_text = build_alt_text(
        scene=post.scene, environment=post.environment, subject=influencer.display_name
    )
    return RenderJob(
        post.id,
        post.generation,
        asset_prefix(post),
        raw_keys,
        tuple(post.formats),
        influencer.caption_template,
        post.caption_text,
        caption_variables(influencer=influencer, post=post),
        tuple(influencer.default_hashtags),
        tuple(post.hashtags),
        alt_text,
        influencer.approval_required,
        # Told when rendered, not at the post's time: a person has the lead time to act.
        preview_refusal(session, post),
    )


@dataclass(frozen=True)
class RenderOutcome:
    files: list[StoredFile]
    caption: Caption


def perform_render(job: RenderJob, *, storage: LocalStorage) -> RenderOutcome:
    """Caption first (cheap, and a broken one stops the post before any file is written)."""
    caption = build_caption(
        template=job.caption_template,
        text=job.caption_text,
        variables=job.variables,
        default_hashtags=job.default_hashtags,
        post_hashtags=job.post_hashtags,
        alt_text=job.alt_text,
    )
    sources = [storage.get(key) for key in job.raw_keys]
    if len(sources) > 1:  # a carousel: every item at the first format's ratio
        items = render_carousel(sources, job.formats[0])
        thumbnail = render_thumbnail(sources[0], fmt=items[0].format)
    else:
        rendered = render_set(sources[0], job.formats)
        items, thumbnail = list(rendered.renditions), rendered.thumbnail
    files = [_store_rendition(storage, job.prefix, r, AssetKind.RENDITION) for r in items]
    files.append(_store_rendition(storage, job.prefix, thumbnail, AssetKind.THUMBNAIL))
    return RenderOutcome(files, caption)


def _store_rendition(
    storage: LocalStorage, prefix: str, r: Rendition, kind: AssetKind
) -> StoredFile:
    name = "thumbnail" if kind is AssetKind.THUMBNAIL else r.name
    stored = storage.put(f"{prefix}/{name}.jpg", r.data)
    return StoredFile(kind, name, stored, r.content_type, r.width, r.height, r.meta)


def record_render(session: Session, job: RenderJob, outcome: RenderOutcome) -> dict[str, Any]:
    kinds = [AssetKind.RENDITION, AssetKind.THUMBNAIL]
    replace_assets(session, job.post_id, job.generation, kinds, outcome.files)
    return {
        "caption": outcome.caption.text,
        "alt_text": outcome.caption.alt_text,
        "last_error": None,
        "attempts": 0,
    }


def render_destination(job: RenderJob) -> PostStatus:
    if job.held:
        return PostStatus.PREVIEW_ONLY
    return PostStatus.AWAITING_APPROVAL if job.needs_approval else PostStatus.READY


# --- run: the three phases under the post's lease -------------------------------------------


def run_render(rt: Runtime, post_id: int, token: str) -> list[Dispatch]:
    """Render one claimed post; what is due next is claimed and returned."""
    return run_leased(rt, Step.RENDER, post_id, token, _render)


def _render(rt: Runtime, lease: Lease) -> None:
    with session_scope(rt.session_factory) as session:
        job = prepare_render(session, session.get_one(Post, lease.post_id))
    outcome = perform_render(job, storage=rt.storage)
    with session_scope(rt.session_factory) as session:
        values = record_render(session, job, outcome)
        # Warnings (e.g. more than 5 hashtags) travel in the audit row, not as an error.
        warnings = "; ".join(outcome.caption.warnings)
        detail = f"warning: {warnings}" if warnings else ""
        if job.held:
            values["last_error"] = detail = f"held: {job.held}"
        lease.finish(rt, session, render_destination(job), values, detail)
