"""A message on its way out, and the contract every sender meets.

A sender calls ``checkpoint()`` right before the call that may deliver, then raises
``NotDelivered`` (surely not arrived) or ``DeliveryUnknown`` (may have arrived), or returns one
line about the receiver's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models import ChannelKind

__all__ = ["Checkpoint", "Outgoing", "Sender"]


@dataclass(frozen=True)
class Outgoing:
    """Everything a sender needs, read once under the claim."""

    id: str  # the idempotency key
    cause: str
    title: str
    body: str
    items: list[dict[str, Any]]
    window_start: datetime
    created_at: datetime
    channel: str
    kind: ChannelKind
    config: dict[str, Any]
    secrets: dict[str, Any] = field(repr=False)  # never in a log line or a traceback


Checkpoint = Callable[[], None]  # commits "send started"; raises when the claim is gone
Sender = Callable[[Outgoing, Checkpoint], str]
