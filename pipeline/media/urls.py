"""Signed, expiring media URLs under RYLA_PUBLIC_BASE_URL, so Instagram can fetch our JPEGs.

URLs are US-ASCII: the storage key is percent-encoded UTF-8 and the query string is encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from pipeline.crypto import derive_key
from pipeline.errors import MediaUrlError
from pipeline.settings import Settings, load_secret_key

__all__ = [
    "MEDIA_PATH",
    "MediaLinks",
    "sign_media_url",
    "verify_media_signature",
    "verify_media_url",
]

MEDIA_PATH = "/media/"  # under the public base URL; the admin HTTP endpoint serves it
_PURPOSE = "media urls v1"


def sign_media_url(key: str, expires_at: datetime, secret: str, *, base_url: str) -> str:
    """``{base_url}/media/{key}?expires=…&sig=…``, good until ``expires_at``."""
    _check_key(key)
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware (UTC)")
    expires = int(expires_at.timestamp())
    query = urlencode({"expires": expires, "sig": _signature(key, expires, secret)})
    return f"{base_url.rstrip('/')}{MEDIA_PATH}{quote(key, safe='/')}?{query}"


def verify_media_url(url: str, secret: str, *, now: datetime, base_url: str = "") -> str:
    """The storage key a signed URL (or its path and query) grants, or MediaUrlError."""
    parts = urlsplit(url)
    prefix = urlsplit(base_url).path.rstrip("/") + MEDIA_PATH
    if not parts.path.startswith(prefix):
        raise MediaUrlError(f"not a media URL: the path must start with {prefix!r}")
    try:
        key = unquote(parts.path[len(prefix) :], errors="strict")
    except UnicodeDecodeError:
        raise MediaUrlError("media URL path is not percent-encoded UTF-8") from None
    query = parse_qs(parts.query)
    return verify_media_signature(
        key,
        expires=(query.get("expires") or [""])[0],
        signature=(query.get("sig") or [""])[0],
        secret=secret,
        now=now,
    )


def verify_media_signature(
    key: str, *, expires: str | int, signature: str, secret: str, now: datetime
) -> str:
    """Check the parts of a media URL (as an HTTP route receives them); returns the key."""
    _check_key(key)
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        raise MediaUrlError("media URL has no valid 'expires'") from None
    if not hmac.compare_digest(_signature(key, expires_at, secret), signature):
        raise MediaUrlError("media URL signature does not match: ask for a new URL")
    if now.timestamp() > expires_at:
        stamp = datetime.fromtimestamp(expires_at, UTC).isoformat()
        raise MediaUrlError(f"media URL expired at {stamp}: ask for a new URL")
    return key


def _signature(key: str, expires: int, secret: str) -> str:
    message = f"{key}\n{expires}".encode()
    digest = hmac.new(derive_key(secret, _PURPOSE), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_key(key: str) -> None:
    # The same rule as LocalStorage.path: a relative path that stays inside the store.
    rel = PurePosixPath(key)
    if not key or rel.is_absolute() or ".." in rel.parts or "\\" in key or "\x00" in key:
        raise MediaUrlError(f"storage key {key!r} must be a relative path inside the store")


@dataclass(frozen=True)
class MediaLinks:
    """Signed, expiring public URLs for the media that targets fetch (Instagram, webhooks)."""

    settings: Settings
    now: datetime

    def url(self, key: str) -> str:
        expires = self.now + timedelta(hours=self.settings.media_url_ttl_hours)
        secret = load_secret_key(self.settings)
        return sign_media_url(key, expires, secret, base_url=self.settings.public_base_url)
