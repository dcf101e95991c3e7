"""The placeholder guard: images from the preview generator never go to Instagram or a webhook.

The outbox takes them, and so does a target created as a test target that accepts previews;
every other post with placeholders waits as ``preview_only``, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Asset, AssetKind, Post, PublishTarget
from pipeline.generators.base import is_placeholder
from pipeline.publishers.targets import resolve_target, takes_previews

__all__ = ["Provenance", "image_provenance", "preview_refusal"]


@dataclass(frozen=True)
class Provenance:
    """Which generators made a post's current images, and whether any is a placeholder."""

    generators: tuple[str, ...]
    placeholders: bool


def image_provenance(session: Session, post: Post) -> Provenance:
    metas = session.scalars(
        select(Asset.meta).where(
            Asset.post_id == post.id,
            Asset.generation == post.generation,
            Asset.kind == AssetKind.RAW,
        )
    ).all()
    makers = sorted({str(meta.get("generator") or "unknown") for meta in metas})
    return Provenance(tuple(makers), any(is_placeholder(meta) for meta in metas))


def preview_refusal(
    session: Session, post: Post, target: PublishTarget | None = None
) -> str | None:
    """Why the post's images may not go to its target, or None when they may."""
    target = target or resolve_target(session, post)
    if target is None or takes_previews(target):
        return None
    made = image_provenance(session, post)
    if not made.placeholders:
        return None
    return (
        f"post {post.id} has placeholder images (generator: {', '.join(made.generators)}), "
        f"which never go to the {target.kind} target {target.name!r}: generate it with Z-Image "
        f"(`ryla post generate {post.id}` where a GPU and the weights are), or publish it to a "
        "test target added with --accept-previews"
    )
