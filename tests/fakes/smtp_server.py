"""A real SMTP server on loopback (aiosmtpd) that records every message it accepted, and can
refuse (4xx / 5xx) or hold its answer on demand, like a mail relay that hangs mid-send.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller

__all__ = ["SmtpServer"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    refuse_next: list[str] = field(default_factory=list)  # answers to give instead of 250
    hold: threading.Event | None = None  # set: answer; unset: keep the client waiting
    received: list[Message] = field(default_factory=list)  # accepted (or held) messages
    arrived: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.port = _free_port()
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self.refuse_next:
                return self.refuse_next.pop(0)
            self.received.append(message_from_bytes(envelope.content))
            self.arrived.set()
        while self.hold is not None and not self.hold.is_set():
            await asyncio.sleep(0.05)  # the message is in; its answer is not
        return "250 OK: queued"

    def by_header(self, name: str) -> list[str]:
        return [str(m[name]) for m in self.received]

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.hold is not None:
            self.hold.set()
        self._controller.stop()
