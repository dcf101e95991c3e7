"""The media endpoint: serves stored images at signed, expiring URLs (what Instagram fetches).

``ryla serve`` runs it; put it behind TLS at RYLA_PUBLIC_BASE_URL. Nothing unsigned is served.
``/healthz`` says whether the database and broker answer (503 naming the one that does not).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import shutil
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from models import utcnow
from pipeline.errors import MediaUrlError, StorageError
from pipeline.health import HealthReport
from pipeline.media.storage import LocalStorage
from pipeline.media.urls import verify_media_url
from pipeline.settings import Settings, load_secret_key

__all__ = ["make_media_server"]

log = logging.getLogger(__name__)


def make_media_server(
    settings: Settings,
    host: str,
    port: int,
    health: Callable[[], HealthReport] | None = None,
) -> ThreadingHTTPServer:
    storage = LocalStorage(settings.storage_dir)
    secret = load_secret_key(settings)
    base_url = settings.public_base_url

    class MediaHandler(BaseHTTPRequestHandler):
        server_version = "ryla-media"

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, *, body: bool) -> None:
            if self.path == "/healthz":
                status, text, kind = _health_answer(health)
                self._text(status, text, body, kind)
                return
            try:
                key = verify_media_url(self.path, secret, base_url=base_url, now=utcnow())
                path = storage.path(key)
            except (MediaUrlError, StorageError) as exc:
                self._text(HTTPStatus.FORBIDDEN, str(exc), body)
                return
            if not path.is_file():
                self._text(HTTPStatus.NOT_FOUND, "no such media", body)
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "image/jpeg")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Cache-Control", "private, max-age=3600")
            self.end_headers()
            if body:
                with path.open("rb") as fh:
                    shutil.copyfileobj(fh, self.wfile)

        def _text(
            self, status: HTTPStatus, text: str, body: bool, kind: str = "text/plain"
        ) -> None:
            data = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            # The query string holds the signature: log the path only.
            log.info("%s %s", self.command, self.path.split("?", 1)[0])

    return ThreadingHTTPServer((host, port), MediaHandler)


def _health_answer(health: Callable[[], HealthReport] | None) -> tuple[HTTPStatus, str, str]:
    """200 when every dependency answers, else 503; the body says which does not, since when."""
    if health is None:
        return HTTPStatus.OK, "ok", "text/plain"
    report = health()
    status = HTTPStatus.OK if report.ok else HTTPStatus.SERVICE_UNAVAILABLE
    return status, json.dumps(report.as_dict()), "application/json"
