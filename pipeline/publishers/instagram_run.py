"""One Instagram publish, step by step: create the container, checkpoint it, poll it, then
``media_publish`` it once; a lost answer is settled by asking the container, never by repeating.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from pipeline.errors import (
    AuthExpired,
    OutcomeUnknown,
    PublishError,
    QuotaExceeded,
    TransientPublishError,
)
from pipeline.publishers.base import Checkpoint, MediaItem, PublishRequest, PublishResult
from pipeline.publishers.graph_errors import (
    AnswerLost,
    ContainerNotReady,
    GraphThrottled,
    PublishingRestricted,
    raise_for_container_error,
)

if TYPE_CHECKING:
    from pipeline.publishers.instagram import InstagramPublisher

__all__ = ["CHECKPOINT_KEYS", "ContainerStatus", "PublishRun"]

# What publish() hands to the checkpoint and reads back from request.resume: the post's
# container, the container whose media_publish may have reached Instagram ("" once refused),
# and the media id once published.
CHECKPOINT_KEYS = ("container_id", "publish_requested", "external_id")


_CONTAINER_MARK = "container:"  # external id when the media id behind a container is not found


class ContainerStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    EXPIRED = "EXPIRED"
    PUBLISHED = "PUBLISHED"


_S = ContainerStatus


class PublishRun:
    """One call of publish(): the request, its checkpoint, and what this call has learnt."""

    def __init__(
        self, publisher: InstagramPublisher, request: PublishRequest, checkpoint: Checkpoint
    ) -> None:
        self.api, self.poll, self.user = publisher.api, publisher.poll, publisher.ig_user_id
        self.publisher = publisher
        self.request = request
        self.checkpoint = checkpoint
        self.resume = request.resume
        # True while a media_publish of the current container may have reached Instagram.
        self.publish_requested = False

    def execute(self) -> PublishResult:
        container_id = str(self.resume.get("container_id") or "") or None
        if self.resume.get("external_id"):
            return self._result(str(self.resume["external_id"]), container_id)
        if container_id:
            self.publish_requested = self.resume.get("publish_requested") == container_id
        if container_id is None:
            self._check_quota()
        for _ in range(self.poll.containers):
            if container_id is None:
                container_id = self._create_post_container()
            media_id = self.finish(container_id)
            if media_id is not None:
                self.checkpoint("external_id", media_id)
                return self._result(media_id, container_id)
            container_id = None  # EXPIRED or ERROR, never published: a new one is safe
        raise TransientPublishError(
            f"Instagram could not process {self.poll.containers} containers in a row for post "
            f"{self.request.post_id}; will retry with a new one"
        )

    def _check_quota(self) -> None:
        """Schedule within the account's quota as Meta reports it (the cap is never assumed)."""
        quota = self.publisher.content_publishing_limit()
        if quota.remaining == 0:
            raise QuotaExceeded(
                f"Instagram publishing quota used up ({quota.usage}/{quota.total} in "
                f"{quota.duration_seconds // 3600} h); waiting for the window to free",
                retry_at=self.publisher.quota_frees_at(),
            )

    # -- containers ---------------------------------------------------------------------

    def _create_post_container(self) -> str:
        request = self.request
        if request.media_type == "carousel":
            fields = {"media_type": "CAROUSEL", "children": ",".join(self._carousel_children())}
        else:
            fields = self._image_fields(request.media[0])
        if request.media_type == "story":
            fields["media_type"] = "STORIES"  # stories take no caption
        else:
            fields["caption"] = request.caption
        fields["is_ai_generated"] = "true"
        container_id = self._create(fields)
        self.checkpoint("container_id", container_id)
        self.publish_requested = False
        return container_id

    def _image_fields(self, item: MediaItem) -> dict[str, str]:
        fields = {"image_url": str(item.url), "is_ai_generated": "true"}
        if self.request.alt_text and self.request.media_type != "story":
            fields["alt_text"] = self.request.alt_text
        return fields

    def _create(self, fields: dict[str, str]) -> str:
        # Repeating a creation whose answer was lost leaves at most an unused container behind,
        # which expires on its own: it can never become a second post.
        body = self.api.post(f"{self.user}/media", fields, action="container", repeatable=True)
        if not body.get("id"):
            raise TransientPublishError("Instagram container: the answer had no container id")
        return str(body["id"])

    def _carousel_children(self) -> list[str]:
        # Children are not checkpointed: alone they can never become a post, so a resumed
        # attempt simply makes new ones (the old ones expire unused).
        children = [
            self._create({**self._image_fields(item), "is_carousel_item": "true"})
            for item in self.request.media
        ]
        for child in children:
            if self._wait_until_ready(child) is not _S.FINISHED:
                raise TransientPublishError(
                    f"Instagram carousel item container {child} failed; will retry with new ones"
                )
        return children

    def _status(self, container_id: str) -> tuple[ContainerStatus, str]:
        body = self.api.get(container_id, action="container status", fields="status_code,status")
        try:
            return ContainerStatus(str(body.get("status_code"))), str(body.get("status") or "")
        except ValueError:
            raise TransientPublishError(
                f"Instagram container {container_id}: unknown status {body.get('status_code')!r}"
            ) from None

    def _wait_until_ready(self, container_id: str) -> ContainerStatus:
        pauses = self.poll.delays(self.poll.status_checks - 1)
        status, detail = self._status(container_id)
        while status is _S.IN_PROGRESS:
            pause = next(pauses, None)
            if pause is None:
                raise TransientPublishError(
                    f"Instagram container {container_id} is still IN_PROGRESS after "
                    f"{self.poll.status_checks} checks; the next try keeps polling it"
                )
            self.poll.sleep(pause)
            status, detail = self._status(container_id)
        if status is _S.ERROR:
            raise_for_container_error(container_id, detail)
        return status

    # -- publishing ---------------------------------------------------------------------

    def finish(self, container_id: str) -> str | None:
        """The media id once published; None when the container must be replaced."""
        status = self._wait_until_ready(container_id)
        if status is _S.PUBLISHED:
            return self._find_media_id(container_id)
        if status is _S.FINISHED:
            return self._publish(container_id)
        self._check_replaceable(container_id, status)
        return None

    def _publish(self, container_id: str) -> str | None:
        for _ in range(self.poll.publish_tries):
            try:
                return self._media_publish(container_id)
            except AnswerLost as lost:
                status = self._status_after_lost_answer(container_id, lost)
            except ContainerNotReady:
                self._publish_refused()
                status = self._wait_until_ready(container_id)
            except PublishError as refused:
                self._publish_refused()
                status = self._status_after_refusal(container_id, refused)
            if status is _S.PUBLISHED:
                return self._find_media_id(container_id)
            if status is not _S.FINISHED:
                self._check_replaceable(container_id, status)
                return None
            # Still FINISHED: Instagram has not published it, so asking again is safe.
        raise TransientPublishError(
            f"Instagram media_publish of container {container_id} failed "
            f"{self.poll.publish_tries} times while it stayed unpublished; will retry"
        )

    def _media_publish(self, container_id: str) -> str:
        self.checkpoint("publish_requested", container_id)  # durable before the call
        self.publish_requested = True
        body = self.api.post(
            f"{self.user}/media_publish",
            {"creation_id": container_id},
            action="media_publish",
            repeatable=False,
        )
        if not body.get("id"):
            raise AnswerLost("Instagram media_publish: the answer had no media id")
        return str(body["id"])

    def _publish_refused(self) -> None:
        # A definite refusal: this publish never happened, so the container may be replaced.
        if self.publish_requested:
            self.checkpoint("publish_requested", "")
            self.publish_requested = False

    def _status_after_lost_answer(self, container_id: str, lost: AnswerLost) -> ContainerStatus:
        pauses = self.poll.delays(self.poll.verify_checks - 1)
        seen = "unreadable"
        for _ in range(self.poll.verify_checks):
            try:
                status = self._status(container_id)[0]
            except PublishError:
                status = None
            if status is not None and status is not _S.IN_PROGRESS:
                return status
            seen = status.value if status else seen
            pause = next(pauses, None)
            if pause is not None:
                self.poll.sleep(pause)
        raise OutcomeUnknown(
            f"{self.api.scrub(str(lost))}; container {container_id} stayed {seen} through "
            f"{self.poll.verify_checks} checks, so the post may or may not be on Instagram: "
            "look at the account, then mark the post published or publish it by hand"
        )

    def _status_after_refusal(self, container_id: str, refused: PublishError) -> ContainerStatus:
        if isinstance(refused, AuthExpired | PublishingRestricted):
            raise refused
        try:  # an earlier publish whose answer was lost may have gone through meanwhile
            status, detail = self._status(container_id)
        except PublishError:
            raise refused from None
        if status is _S.PUBLISHED:
            return status
        if isinstance(refused, QuotaExceeded):
            refused.retry_at = self._quota_retry_at()
        waiting = isinstance(refused, QuotaExceeded | GraphThrottled)  # a new container won't help
        if status in (_S.EXPIRED, _S.ERROR) and not waiting:
            if status is _S.ERROR:
                raise_for_container_error(container_id, detail)
            return status  # the container itself is spent: the caller replaces it
        raise refused

    def _check_replaceable(self, container_id: str, status: ContainerStatus) -> None:
        if self.publish_requested:
            raise OutcomeUnknown(
                f"Instagram container {container_id} is {status.value} after a media_publish "
                "that may have reached Instagram; look at the account before publishing again"
            )

    def _quota_retry_at(self) -> datetime:
        now = self.publisher.clock()
        try:
            return self.publisher.quota_frees_at()
        except PublishError:
            return now + timedelta(hours=1)  # the quota is unreadable: try again in a while

    # -- the result ---------------------------------------------------------------------

    def _find_media_id(self, container_id: str) -> str:
        """The media behind a PUBLISHED container whose publish answer we never got.

        Containers do not name their media, so match the newest posts by caption; without a
        match, the container id (marked) stands in.
        """
        caption = self.request.caption
        try:
            recent = self.api.get(
                f"{self.user}/media", action="recent media", fields="id,caption", limit=25
            )
            for media in recent.get("data", []):
                if caption and media.get("caption") == caption and media.get("id"):
                    return str(media["id"])
        except PublishError:
            pass  # the post is out either way; the id is a nicety
        return f"{_CONTAINER_MARK}{container_id}"

    def _result(self, media_id: str, container_id: str | None) -> PublishResult:
        permalink = None
        if not media_id.startswith(_CONTAINER_MARK):
            # Best-effort: the post is out, a missing link is no failure.
            with contextlib.suppress(PublishError):
                answer = self.api.get(media_id, action="permalink", fields="permalink")
                permalink = answer.get("permalink")
        detail = {"ig_user_id": self.user, "container_id": container_id}
        return PublishResult(external_id=media_id, permalink=permalink, detail=detail)
