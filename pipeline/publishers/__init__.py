"""Publishers: where a ready post goes (outbox folder, signed webhook, Instagram Graph API).

``build_publisher`` turns a publish-target row (config + encrypted secrets) into one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

from models import PublishTarget, TargetKind
from pipeline.crypto import decrypt_secrets
from pipeline.publishers.base import Publisher
from pipeline.publishers.graph_api import PollPolicy
from pipeline.publishers.instagram import InstagramPublisher
from pipeline.publishers.outbox import OutboxPublisher
from pipeline.publishers.webhook import WebhookPublisher
from pipeline.settings import Settings, load_secret_key

__all__ = ["build_publisher", "poll_policy"]


def poll_policy(settings: Settings) -> PollPolicy:
    return PollPolicy(
        first_delay=settings.graph_poll_first_delay, max_delay=settings.graph_poll_max_delay
    )


def build_publisher(
    target: PublishTarget | None,
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    client: httpx.Client | None = None,
) -> Publisher:
    """The publisher for a target row; no target means the default outbox folder.

    Raises ValueError (or its subclass SecretsError) when the target is misconfigured.
    """
    if target is None:
        return OutboxPublisher(settings.outbox_dir)
    if target.kind is TargetKind.OUTBOX:
        return OutboxPublisher(Path(target.config.get("path") or settings.outbox_dir))
    if client is None:
        raise ValueError(f"publish target {target.name!r} needs an HTTP client")
    secrets = (
        decrypt_secrets(target.secrets_encrypted, load_secret_key(settings))
        if target.secrets_encrypted
        else {}
    )
    if target.kind is TargetKind.WEBHOOK:
        return WebhookPublisher.from_target(config=target.config, secrets=secrets, client=client)
    return InstagramPublisher.from_target(
        config=target.config,
        secrets=secrets,
        client=client,
        clock=clock,
        poll=poll_policy(settings),
    )
