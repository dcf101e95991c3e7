"""A threaded HTTP server on 127.0.0.1 and a free port, started and stopped as a context manager.

Shared by the fake Graph API and the fake media host; nothing here listens beyond loopback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["LoopbackFake", "LoopbackServer", "RequestHandler"]

Handle = Callable[["RequestHandler"], None]


class RequestHandler(BaseHTTPRequestHandler):
    """Hands every request to the owning server's ``handle`` callable."""

    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads
    timeout = 10  # a client that goes silent cannot hold a thread for long

    def do_GET(self) -> None:
        self.server.handle(self)

    def do_POST(self) -> None:
        self.server.handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read the fakes' records, not their access logs

    def send_json(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, data, "application/json; charset=UTF-8", headers)

    def send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    handle: Handle

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a slow answer is part of the test, not a failure


class LoopbackServer:
    def __init__(self, handle: Handle) -> None:
        self._handle = handle
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running: use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        server = _Server(("127.0.0.1", 0), RequestHandler)
        server.handle = self._handle
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopbackFake:
    """A fake service behind a LoopbackServer: ``with Fake(...) as fake`` starts and stops it."""

    _server: LoopbackServer

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop()
