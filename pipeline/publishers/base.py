"""The contract every publisher meets, and the tree of errors a publish can end in.

PublishError
├── TransientPublishError   retry later, same attempt state (network, 5xx)
│   └── Throttled           the target asks us to slow down: rescheduled without a try
├── PermanentPublishError   the post is wrong for the target: failed, with the reason
├── AuthExpired             the target needs re-authorisation; its posts wait
├── QuotaExceeded           the target's window is full; retry at ``retry_at``
├── OutcomeUnknown          it may or may not be out there: a person decides
└── TargetUnusable          nothing was sent: the target is misconfigured or needs a new token
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Checkpoint",
    "MediaItem",
    "PublishRequest",
    "PublishResult",
    "Publisher",
    "Verdict",
    "Verifier",
]


@dataclass(frozen=True)
class MediaItem:
    format: str
    path: Path  # the local file
    url: str | None  # where the target can fetch it, when it needs to
    content_type: str
    sha256: str


@dataclass(frozen=True)
class PublishRequest:
    post_id: int
    attempt_id: str  # one per attempt, stable across a resume
    handle: str
    caption: str
    alt_text: str
    media_type: str
    media: tuple[MediaItem, ...]
    publish_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    # What an interrupted earlier attempt had recorded (e.g. a container id), to resume from.
    resume: dict[str, Any] = field(default_factory=dict)
    # When the attempt started: nothing it published can be older.
    not_before: datetime | None = None
    # Media ids other posts of the account already hold: never this post's.
    known_media_ids: frozenset[str] = frozenset()
    # One per post's images, kept by every attempt at them (a person's retry of a failed post
    # too): a receiver that dedupes on it never posts them twice. Empty: the attempt id.
    delivery_key: str = ""

    @property
    def idempotency_key(self) -> str:
        return self.delivery_key or self.attempt_id


@dataclass(frozen=True)
class PublishResult:
    external_id: str
    permalink: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


# Called by a publisher to durably record progress (key, value) before its next external call.
Checkpoint = Callable[[str, str], None]


class Publisher(Protocol):
    kind: str

    def publish(self, request: PublishRequest, checkpoint: Checkpoint) -> PublishResult: ...


@dataclass(frozen=True)
class Verdict:
    """What a target says about an earlier attempt, asked before a person's answer is recorded."""

    published: bool | None  # None: the target cannot tell
    media_id: str | None = None  # when published and the media is known
    detail: str = ""  # the target's own words, for the person


@runtime_checkable
class Verifier(Protocol):
    """A publisher that can be asked whether an earlier attempt went out (Instagram can)."""

    def verify(self, request: PublishRequest) -> Verdict: ...

    def media_exists(self, media_id: str) -> bool: ...
