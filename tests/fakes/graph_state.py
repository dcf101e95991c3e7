"""What the fake Graph API remembers: containers, published media, requests, armed faults.

Tests read these records to assert "published exactly once".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Container", "Fault", "Published", "RecordedRequest"]


@dataclass
class Container:
    id: str
    kind: str  # IMAGE, STORIES, CAROUSEL or CAROUSEL_ITEM
    fields: dict[str, str]
    ready_at: float  # time.monotonic() when processing ends
    outcome: str = "FINISHED"  # what processing ends in: FINISHED, ERROR or EXPIRED
    detail: str = ""
    media_id: str | None = None
    # A publish Instagram accepted takes effect at this time.monotonic(): until then the
    # container still reads FINISHED and the media is not listed (a publish that "lands late").
    lands_at: float = 0.0

    def landed(self) -> bool:
        return self.media_id is not None and time.monotonic() >= self.lands_at

    def status(self) -> tuple[str, str]:
        if self.landed():
            return "PUBLISHED", "Published"
        if self.media_id:
            return "FINISHED", "Finished"
        if self.outcome == "EXPIRED" or time.monotonic() >= self.ready_at:
            return self.outcome, self.detail or self.outcome.title()
        return "IN_PROGRESS", "In Progress"


@dataclass(frozen=True)
class Published:
    media_id: str
    container_id: str
    kind: str
    caption: str
    image_urls: tuple[str, ...]
    at: float  # the fake's clock, seconds since the epoch, when it appeared on the account
    fields: dict[str, str] = field(default_factory=dict)  # what the container was created with


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    route: str
    path: str
    params: dict[str, str]


@dataclass
class Fault:
    routes: frozenset[str] | None  # None: any route
    times: int
    status: int = 0  # 0: answer normally (after ``delay``)
    body: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    after: str | None = None  # armed only once a call to this route has been seen
    skip: int = 0  # let this many matching calls through first
    armed_at: int = 0  # how many requests the fake had seen when the fault was armed
