"""The public part of the studio: images at signed, expiring URLs (what Instagram fetches, and
what the studio's own pages show). Nothing unsigned is served.

Links for people are signed with an expiry rounded up to the hour, so a page shows the same
URL for an hour and the browser's cache (and ``ETag`` → 304) does the rest.
"""

from __future__ import annotations

import logging
import mimetypes
from datetime import datetime, timedelta
from email.utils import formatdate
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse

from admin.studio.core import studio_of
from pipeline.errors import MediaUrlError, StorageError
from pipeline.media.storage import LocalStorage
from pipeline.media.urls import MEDIA_PATH, sign_media_url, verify_media_url

__all__ = [
    "media_link",
    "media_router",
]

log = logging.getLogger(__name__)


def media_link(
    key: str, *, secret: str, base_url: str, now: datetime, ttl_hours: int, absolute: bool
) -> str:
    """A signed URL for a stored file: absolute under the public base URL for integrations,
    path-only for the studio's pages (whatever host they were opened on)."""
    hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    base = base_url if absolute else urlsplit(base_url).path
    return sign_media_url(key, hour + timedelta(hours=ttl_hours), secret, base_url=base)


def media_router(base_url: str) -> APIRouter:
    router = APIRouter()
    prefix = urlsplit(base_url).path.rstrip("/") + MEDIA_PATH

    @router.api_route(prefix + "{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
    def media(request: Request, key: str) -> Response:
        studio = studio_of(request)
        raw = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"").decode("latin-1")
        # The query string holds the signature: log the path only.
        log.info("%s %s", request.method, raw.decode("latin-1"))
        try:
            found = verify_media_url(
                f"{raw.decode('latin-1')}?{query}",
                studio.secret,
                base_url=studio.settings.public_base_url,
                now=studio.clock(),
            )
            path = LocalStorage(studio.settings.storage_dir).path(found)
        except (MediaUrlError, StorageError) as exc:
            return PlainTextResponse(f"{exc}\n", status_code=403)
        if not path.is_file():
            return PlainTextResponse("no such media\n", status_code=404)
        stat = path.stat()
        # Stored files never change under their key (a new generation gets new keys).
        etag = f'"{stat.st_size:x}-{int(stat.st_mtime_ns):x}"'
        headers = {
            "Cache-Control": "private, max-age=3600",
            "ETag": etag,
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        }
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        media_type = mimetypes.guess_type(path.name)[0] or "image/jpeg"
        return FileResponse(path, media_type=media_type, headers=headers, stat_result=stat)

    return router
