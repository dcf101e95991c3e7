"""The files a step writes and the asset rows that describe them.

A rerun of the same generation replaces its assets, never duplicates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from models import Asset, AssetKind, Post
from pipeline.media.storage import StoredObject

__all__ = ["StoredFile", "asset_prefix", "replace_assets"]


@dataclass(frozen=True)
class StoredFile:
    kind: AssetKind
    format: str
    stored: StoredObject
    content_type: str
    width: int
    height: int
    meta: dict[str, Any]


def _asset_row(post_id: int, generation: int, f: StoredFile) -> Asset:
    return Asset(
        post_id=post_id,
        generation=generation,
        kind=f.kind,
        format=f.format,
        storage_key=f.stored.key,
        content_type=f.content_type,
        width=f.width,
        height=f.height,
        bytes=f.stored.size,
        sha256=f.stored.sha256,
        meta=f.meta,
    )


def asset_prefix(post: Post) -> str:
    return f"posts/{post.id}/g{post.generation}"


def replace_assets(
    session: Session, post_id: int, generation: int, kinds: list[AssetKind], files: list[StoredFile]
) -> None:
    # A rerun of the same generation (a redelivery, a re-render) replaces, never duplicates.
    session.execute(
        delete(Asset).where(
            Asset.post_id == post_id, Asset.generation == generation, Asset.kind.in_(kinds)
        )
    )
    session.add_all(_asset_row(post_id, generation, f) for f in files)
