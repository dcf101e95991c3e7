"""The Instagram publisher: create a container, checkpoint it, poll it, media_publish it, once.

A container is replaced only when Instagram says it can no longer be published (EXPIRED, ERROR)
and no publish of it may have reached Instagram; a lost publish answer is settled by asking it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from pipeline.errors import (
    PermanentPublishError,
)
from pipeline.publishers.base import (
    Checkpoint,
    MediaItem,
    PublishRequest,
    PublishResult,
    Verdict,
)
from pipeline.publishers.graph_api import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    GraphApi,
    PollPolicy,
    PublishingQuota,
    content_publishing_limit,
    quota_frees_at,
)
from pipeline.publishers.graph_errors import (
    install_log_scrubber,
)
from pipeline.publishers.instagram_media import (
    media_exists,
    media_made_by,
    read_container_status,
)
from pipeline.publishers.instagram_run import (
    CHECKPOINT_KEYS,
    ContainerStatus,
    PublishRun,
    media_query,
)

__all__ = ["CHECKPOINT_KEYS", "ContainerStatus", "InstagramPublisher", "check_publish_request"]

_MEDIA_TYPES = {"image": 1, "story": 1, "carousel": 10}


class InstagramPublisher:
    """One Instagram account; ``base_url`` picks graph.instagram.com, .facebook.com or a fake."""

    kind = "instagram"

    def __init__(
        self,
        *,
        client: httpx.Client,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        ig_user_id: str,
        access_token: str,
        poll: PollPolicy | None = None,
        clock: Callable[[], datetime],
    ) -> None:
        if not ig_user_id or not access_token:
            raise ValueError("an Instagram target needs ig_user_id (config) and access_token")
        self.ig_user_id = str(ig_user_id)
        self.poll = poll or PollPolicy()
        self.clock = clock
        self.api = GraphApi(
            client=client,
            base_url=base_url,
            api_version=api_version,
            access_token=access_token,
            policy=self.poll,
        )
        install_log_scrubber()

    @classmethod
    def from_target(
        cls,
        *,
        config: Mapping[str, Any],
        secrets: Mapping[str, Any],
        client: httpx.Client,
        clock: Callable[[], datetime],
        poll: PollPolicy | None = None,
    ) -> InstagramPublisher:
        """Build from a PublishTarget's ``config`` and its decrypted secrets."""
        return cls(
            client=client,
            base_url=str(config.get("base_url") or DEFAULT_BASE_URL),
            api_version=str(config.get("api_version") or DEFAULT_API_VERSION),
            ig_user_id=str(config.get("ig_user_id") or ""),
            access_token=str(secrets.get("access_token") or ""),
            poll=poll,
            clock=clock,
        )

    def publish(self, request: PublishRequest, checkpoint: Checkpoint) -> PublishResult:
        check_publish_request(request)
        return PublishRun(self, request, checkpoint).execute()

    def verify(self, request: PublishRequest) -> Verdict:
        """What Instagram says about the attempt's container, for a person settling the post.

        Raises PublishError when Instagram cannot be asked (network, token).
        """
        container = str(
            request.resume.get("publish_requested") or request.resume.get("container_id") or ""
        )
        if not container:
            return Verdict(None, detail="no Instagram container was recorded for this attempt")
        status, _ = read_container_status(self.api, container)
        said = f"Instagram reports container {container} as {status.value}"
        if status is ContainerStatus.PUBLISHED:
            found = media_made_by(self.api, self.ig_user_id, media_query(request), now=self.clock())
            media_id = found[0] if len(found) == 1 else None
            which = f"media {media_id}" if media_id else f"{len(found)} media fit it"
            return Verdict(True, media_id, f"{said} ({which})")
        if status is ContainerStatus.IN_PROGRESS:
            return Verdict(None, detail=f"{said}: still processing, ask again in a minute")
        return Verdict(False, detail=f"{said}: it was not published through this container")

    def media_exists(self, media_id: str) -> bool:
        return media_exists(self.api, media_id)

    def content_publishing_limit(self, since: datetime | None = None) -> PublishingQuota:
        return content_publishing_limit(self.api, self.ig_user_id, since=since)

    def quota_frees_at(self) -> datetime:
        return quota_frees_at(self.api, self.ig_user_id, now=self.clock())


def check_publish_request(request: PublishRequest) -> None:
    """Refuse, before any call, what Instagram cannot take: say which item and what to do."""
    most = _MEDIA_TYPES.get(request.media_type)
    if most is None:
        raise PermanentPublishError(
            f"media type {request.media_type!r} cannot go to Instagram: use "
            f"{', '.join(_MEDIA_TYPES)}"
        )
    least = 2 if request.media_type == "carousel" else 1
    if not least <= len(request.media) <= most:
        raise PermanentPublishError(
            f"an Instagram {request.media_type} takes {least}-{most} images, "
            f"post {request.post_id} has {len(request.media)}"
        )
    for index, item in enumerate(request.media, start=1):
        _check_media_item(index, item)


def _check_media_item(index: int, item: MediaItem) -> None:
    if not item.url or not item.url.startswith(("https://", "http://")) or not item.url.isascii():
        raise PermanentPublishError(
            f"image {index} ({item.format}) has no public US-ASCII URL ({item.url!r}): Instagram "
            "downloads image_url itself; set RYLA_PUBLIC_BASE_URL to a reachable address"
        )
    if item.content_type != "image/jpeg":
        raise PermanentPublishError(
            f"image {index} ({item.format}) is {item.content_type}: Instagram takes JPEG only"
        )
