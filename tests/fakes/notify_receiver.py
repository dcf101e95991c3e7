"""A webhook receiver for notifications (Slack-, Discord- or n8n-like): records every POST with
its headers, checks the signature, and can fail, refuse or hold its answer on demand.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.publishers.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature
from tests.fakes.loopback import LoopbackFake, LoopbackServer, RequestHandler

__all__ = ["NotifyReceiver", "Received"]


@dataclass(frozen=True)
class Received:
    key: str  # Idempotency-Key: the notification id
    body: dict[str, Any]
    signed: bool


@dataclass
class NotifyReceiver(LoopbackFake):
    signing_key: str | None = None  # when known, signatures are checked
    # Answers to give before the 200s; 0 takes the message and closes without an answer.
    statuses: list[int] = field(default_factory=list)
    hold: threading.Event | None = None  # unset: read the request, then keep the answer back
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)

    @property
    def url(self) -> str:
        return f"{self._server.base_url}/services/T000/B000/secret-path"

    def _handle(self, handler: RequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        signature = handler.headers.get(SIGNATURE_HEADER, "")
        signed = bool(self.signing_key) and verify_signature(raw, signature, self.signing_key or "")
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            if status in (0, 200):
                key = handler.headers.get(IDEMPOTENCY_HEADER, "")
                self.received.append(Received(key, json.loads(raw), signed))
                self.arrived.set()
        deadline = time.monotonic() + 60
        while self.hold is not None and not self.hold.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if status == 0:
            handler.close_connection = True
            return  # the work is done, the answer never leaves
        handler.send_json(status, b'{"ok": true}' if status == 200 else b'{"error": "no"}')

    def keys(self) -> list[str]:
        return [r.key for r in self.received]
