"""Reading what Instagram holds: a container's status, and the media a published container made.

Containers do not name their media, so after a lost answer the media is narrowed down from the
account's newest ones by facts, never guessed by caption alone (``media_made_by``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pipeline.errors import PermanentPublishError, TransientPublishError
from pipeline.publishers.graph_api import GraphApi

__all__ = [
    "CLOCK_SKEW",
    "ContainerStatus",
    "MediaQuery",
    "media_exists",
    "media_made_by",
    "read_container_status",
]

# How far Meta's clock and ours may disagree when a media's timestamp is compared with ours.
CLOCK_SKEW = timedelta(minutes=2)
# A request with no attempt start (a publisher test, a hand-built request) looks back this far.
_DEFAULT_LOOKBACK = timedelta(hours=1)
# Instagram's own media_type for each of our media types, and the edge that lists it.
_LISTED_AS = {
    "image": ("media", "IMAGE"),
    "carousel": ("media", "CAROUSEL_ALBUM"),
    "story": ("stories", "IMAGE"),
}


class ContainerStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    EXPIRED = "EXPIRED"
    PUBLISHED = "PUBLISHED"


def read_container_status(api: GraphApi, container_id: str) -> tuple[ContainerStatus, str]:
    """The container's ``status_code`` and Meta's ``status`` text (an ERROR's subcode is there)."""
    body = api.get(container_id, action="container status", fields="status_code,status")
    try:
        return ContainerStatus(str(body.get("status_code"))), str(body.get("status") or "")
    except ValueError:
        raise TransientPublishError(
            f"Instagram container {container_id}: unknown status {body.get('status_code')!r}"
        ) from None


@dataclass(frozen=True)
class MediaQuery:
    """What is known about the media one attempt may have made."""

    media_type: str  # ours: image, carousel, story
    caption: str
    not_before: datetime | None  # the attempt started then: its media cannot be older
    known_ids: Collection[str]  # media ids other posts already hold


def media_made_by(api: GraphApi, ig_user_id: str, query: MediaQuery, *, now: datetime) -> list[str]:
    """The media ids that can be the one a published container made: exactly one, or a person
    decides.

    A candidate was published between the attempt's start and now (with room for clock skew), is
    of the post's type, carries the post's caption (stories have none), and is held by no other
    post. Two posts sharing a caption, or a post made by hand in the same minutes, leave two
    candidates: that is reported, never guessed between.
    """
    edge, listed_as = _LISTED_AS.get(query.media_type, ("media", "IMAGE"))
    earliest = (query.not_before or now - _DEFAULT_LOOKBACK) - CLOCK_SKEW
    latest = now + CLOCK_SKEW
    body = api.get(
        f"{ig_user_id}/{edge}",
        action=f"recent {edge}",
        fields="id,timestamp,media_type,caption",
        limit=50,
    )
    found = []
    for media in body.get("data", []):
        media_id, stamp = str(media.get("id") or ""), _timestamp(media.get("timestamp"))
        if not media_id or media_id in query.known_ids or stamp is None:
            continue
        if not earliest <= stamp <= latest or media.get("media_type") != listed_as:
            continue
        if edge == "media" and (media.get("caption") or "") != query.caption:
            continue
        found.append(media_id)
    return found


def media_exists(api: GraphApi, media_id: str) -> bool:
    """Whether the account can read this media id (a person's answer is checked with it).

    Meta answers an unknown id with a permanent error; anything else (network, token) raises.
    """
    try:
        body = api.get(media_id, action="media lookup", fields="id")
    except PermanentPublishError:
        return False
    return str(body.get("id") or "") == media_id


def _timestamp(value: object) -> datetime | None:
    # Meta writes "2026-11-26T09:00:03+0000".
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
