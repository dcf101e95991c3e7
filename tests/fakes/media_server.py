"""A fake media host on loopback: serves test JPEGs at signed, expiring URLs, as admin/ will.

The fake Graph API downloads ``image_url`` from here, the way Instagram fetches our media.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from models import utcnow
from pipeline.errors import MediaUrlError
from pipeline.media.urls import MEDIA_PATH, sign_media_url, verify_media_url
from tests.fakes.loopback import LoopbackFake, LoopbackServer, RequestHandler

__all__ = ["FakeMediaHost"]


class FakeMediaHost(LoopbackFake):
    def __init__(self, *, secret: str | None = None) -> None:
        self.secret = secret  # when set, URLs are signed and checked like the real endpoint
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []  # keys served, in order
        self.refused: list[str] = []  # paths refused (bad or expired signature, unknown key)
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def put(self, key: str, data: bytes, *, expires_in: float = 3600) -> str:
        """Store ``data`` and return the URL Instagram would be given."""
        with self._lock:
            self.files[key] = data
        if self.secret is None:
            return f"{self.base_url}{MEDIA_PATH}{quote(key, safe='/')}"
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        return sign_media_url(key, expires_at, self.secret, base_url=self.base_url)

    def _handle(self, handler: RequestHandler) -> None:
        try:
            key = self._key_for(handler.path)
        except MediaUrlError:
            key = None
        with self._lock:
            data = self.files.get(key) if key is not None else None
            if data is None:
                self.refused.append(handler.path)
            else:
                self.downloads.append(str(key))
        if data is None:
            handler.send_bytes(404 if key else 403, b"not found", "text/plain")
        else:
            handler.send_bytes(200, data, "image/jpeg")

    def _key_for(self, path: str) -> str:
        if self.secret is not None:
            return verify_media_url(path, self.secret, now=utcnow())
        if not path.startswith(MEDIA_PATH):
            raise MediaUrlError("not a media path")
        return path[len(MEDIA_PATH) :].split("?")[0]
