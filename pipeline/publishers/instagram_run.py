"""One Instagram publish, step by step: create the container, checkpoint it, poll it, then
``media_publish`` it once; a lost answer is settled by asking the container, never by repeating.

The rule: once any ``media_publish`` for a post may have reached Instagram, that post can only
end published (media id known) or unknown (a person decides) — never failed, never re-sent
through a new container — whatever later calls answer. ``PublishRun.in_doubt`` carries it.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
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
from pipeline.publishers.instagram_media import (
    ContainerStatus,
    MediaQuery,
    media_made_by,
    read_container_status,
)

if TYPE_CHECKING:
    from pipeline.publishers.instagram import InstagramPublisher

__all__ = ["CHECKPOINT_KEYS", "ContainerStatus", "PublishRun", "media_query"]

# What publish() hands to the checkpoint and reads back from request.resume: the post's
# container, the container whose media_publish may have reached Instagram (cleared only by a
# refusal while no earlier call is in doubt), and the media id once published.
CHECKPOINT_KEYS = ("container_id", "publish_requested", "external_id")

_S = ContainerStatus


def media_query(request: PublishRequest) -> MediaQuery:
    return MediaQuery(
        request.media_type, request.caption, request.not_before, request.known_media_ids
    )


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
        # The checkpoint holds "publish_requested" for the current container.
        self.publish_requested = False
        # Some media_publish of this post may have reached Instagram: an answer was lost, or a
        # run before this one sent one and never learnt its outcome. Never cleared in a run:
        # a later refusal says only that the later call did not publish.
        self.in_doubt = False

    def execute(self) -> PublishResult:
        container_id = str(self.resume.get("container_id") or "") or None
        if self.resume.get("external_id"):
            return self._result(str(self.resume["external_id"]), container_id)
        requested = str(self.resume.get("publish_requested") or "")
        if requested:
            container_id = requested  # the container that may be out is the one to ask
            self.publish_requested = self.in_doubt = True
        if container_id is None:
            self._check_quota()
        for _ in range(self.poll.containers):
            if container_id is None:
                container_id = self._create_post_container()
            media_id = self.finish(container_id)
            if media_id is not None:
                self.checkpoint("external_id", media_id)
                return self._result(media_id, container_id)
            container_id = None  # EXPIRED or ERROR and never sent for publishing: replaceable
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
        # The AI label goes on the container that becomes the post: for a carousel, the
        # carousel container only, never its items (Meta's changelog, 2026-06-22).
        fields["is_ai_generated"] = "true"
        container_id = self._create(fields)
        self.checkpoint("container_id", container_id)
        self.publish_requested = False
        return container_id

    def _image_fields(self, item: MediaItem) -> dict[str, str]:
        fields = {"image_url": str(item.url)}
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
        return read_container_status(self.api, container_id)

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
                self.in_doubt = True
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
            # Still FINISHED: this container is not published, and one container can never
            # become two posts, so sending its media_publish again cannot double the post.
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
        # A definite refusal proves that this call did not publish. It proves nothing about an
        # earlier call whose answer was lost: while one is in doubt, "may be out" stays.
        if self.publish_requested and not self.in_doubt:
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
            f"`ryla post resolve {self.request.post_id}` asks Instagram again and records it"
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
            if status is _S.ERROR and not self.in_doubt:
                raise_for_container_error(container_id, detail)
            return status  # the container itself is spent: the caller replaces it, or not
        raise refused

    def _check_replaceable(self, container_id: str, status: ContainerStatus) -> None:
        # The rule: a container that may have been published is never replaced by a new one.
        if self.publish_requested or self.in_doubt:
            raise OutcomeUnknown(
                f"Instagram container {container_id} is {status.value} after a media_publish "
                "that may have reached Instagram; it is never replaced by a new container: "
                f"look at the account, then `ryla post resolve {self.request.post_id}`"
            )

    def _quota_retry_at(self) -> datetime:
        now = self.publisher.clock()
        try:
            return self.publisher.quota_frees_at()
        except PublishError:
            return now + timedelta(hours=1)  # the quota is unreadable: try again in a while

    # -- the result ---------------------------------------------------------------------

    def _find_media_id(self, container_id: str) -> str:
        """The media behind a PUBLISHED container whose publish answer we never got."""
        # The post is out: from here it can only end published or unknown.
        self.in_doubt = True
        if not self.publish_requested:
            self.checkpoint("publish_requested", container_id)
            self.publish_requested = True
        try:
            found = media_made_by(
                self.api, self.user, media_query(self.request), now=self.publisher.clock()
            )
        except PublishError as exc:
            raise TransientPublishError(
                f"Instagram container {container_id} is PUBLISHED, but its media could not be "
                f"listed ({exc}); the next try asks again"
            ) from None
        if len(found) == 1:
            return found[0]
        if not found:  # Meta lists new media with a delay now and then
            raise TransientPublishError(
                f"Instagram container {container_id} is PUBLISHED, but its media is not listed "
                "yet; the next try asks again"
            )
        raise OutcomeUnknown(
            f"Instagram container {container_id} is PUBLISHED, but {len(found)} media published "
            f"in the same minutes fit it ({', '.join(found)}): find this post on the account, "
            f"then `ryla post resolve {self.request.post_id} --published --media-id ID`"
        )

    def _result(self, media_id: str, container_id: str | None) -> PublishResult:
        permalink = None
        # Best-effort: the post is out, a missing link is no failure.
        with contextlib.suppress(PublishError):
            answer = self.api.get(media_id, action="permalink", fields="permalink")
            permalink = answer.get("permalink")
        detail = {"ig_user_id": self.user, "container_id": container_id}
        return PublishResult(external_id=media_id, permalink=permalink, detail=detail)
