"""The media endpoint: serves stored images at signed, expiring URLs (what Instagram fetches),
plus /healthz and the Prometheus /metrics (behind a bearer token when RYLA_METRICS_TOKEN is set).

``ryla serve`` runs it; put it behind TLS at RYLA_PUBLIC_BASE_URL. No unsigned media is served.
"""

from __future__ import annotations

import logging
import mimetypes
import shutil
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry

from models import utcnow
from pipeline.errors import MediaUrlError, StorageError
from pipeline.media.storage import LocalStorage
from pipeline.media.urls import verify_media_url
from pipeline.settings import Settings, load_secret_key
from tasks.metrics import metrics_registry, serve_metrics

__all__ = ["make_media_server"]

log = logging.getLogger(__name__)


def make_media_server(settings: Settings, host: str, port: int) -> ThreadingHTTPServer:
    storage = LocalStorage(settings.storage_dir)
    secret = load_secret_key(settings)
    base_url = settings.public_base_url
    registry = metrics_registry(settings)

    class MediaHandler(BaseHTTPRequestHandler):
        server_version = "ryla-media"

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, *, body: bool) -> None:
            if self.path == "/healthz":
                self._text(HTTPStatus.OK, "ok", body)
                return
            if self.path.split("?", 1)[0] == "/metrics":
                _send_metrics(self, registry, settings.metrics_token, body=body)
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

        def _text(self, status: HTTPStatus, text: str, body: bool) -> None:
            data = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            # The query string holds the signature: log the path only.
            log.info("%s %s", self.command, self.path.split("?", 1)[0])

    return ThreadingHTTPServer((host, port), MediaHandler)


def _send_metrics(
    handler: BaseHTTPRequestHandler, registry: CollectorRegistry, token: str, *, body: bool
) -> None:
    authorization = handler.headers.get("Authorization", "")
    status, data, content_type = serve_metrics(registry, authorization=authorization, token=token)
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if body:
        handler.wfile.write(data)
