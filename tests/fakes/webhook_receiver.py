"""A webhook receiver like the n8n/Make/Zapier endpoints users run: checks the signature,
dedupes on the Idempotency-Key, and can fail or drop answers on demand.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from pipeline.publishers.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature
from tests.fakes.loopback import LoopbackFake, LoopbackServer, RequestHandler

__all__ = ["WebhookReceiver"]


@dataclass
class WebhookReceiver(LoopbackFake):
    signing_key: str
    fail_next: int = 0  # answer HTTP 500 this many times
    drop_next: int = 0  # accept, then close the connection without an answer
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # by idempotency key
    deliveries: int = 0
    bad_signatures: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)

    @property
    def url(self) -> str:
        return f"{self._server.base_url}/hooks/ryla"

    def _handle(self, handler: RequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        with self._lock:
            self.deliveries += 1
            if not verify_signature(
                body, handler.headers.get(SIGNATURE_HEADER, ""), self.signing_key
            ):
                self.bad_signatures += 1
                handler.send_json(401, b'{"error": "bad signature"}')
                return
            if self.fail_next:
                self.fail_next -= 1
                handler.send_json(500, b'{"error": "try later"}')
                return
            key = handler.headers.get(IDEMPOTENCY_HEADER, "")
            self.accepted.setdefault(key, json.loads(body))  # a repeat changes nothing
            drop = self.drop_next > 0
            self.drop_next -= drop
        if drop:
            handler.close_connection = True
            return  # the work is done, the answer never leaves
        handler.send_json(200, json.dumps({"id": f"hook-{key[:8]}"}).encode())
