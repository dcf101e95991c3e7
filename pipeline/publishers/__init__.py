"""Publishers: where a ready post goes (outbox folder, signed webhook, Instagram Graph API)."""

from __future__ import annotations

from pathlib import Path

from models import PublishTarget, TargetKind
from pipeline.publishers.base import PermanentPublishError, Publisher
from pipeline.publishers.outbox import OutboxPublisher
from pipeline.settings import Settings

__all__ = ["build_publisher"]


def build_publisher(target: PublishTarget | None, *, settings: Settings) -> Publisher:
    """The publisher for a target row; no target means the default outbox folder."""
    if target is None:
        return OutboxPublisher(settings.outbox_dir)
    if target.kind is TargetKind.OUTBOX:
        return OutboxPublisher(Path(target.config.get("path") or settings.outbox_dir))
    raise PermanentPublishError(f"publish target {target.name!r}: kind {target.kind} is not wired")
