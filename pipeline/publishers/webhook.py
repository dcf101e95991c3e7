"""The webhook publisher: a signed JSON description of the post, POSTed to n8n, Make, Zapier or an
in-house receiver, with one idempotency key per post's images; and the check receivers run.

Every request carries:

    Content-Type:      application/json
    Idempotency-Key:   <key>   (the same on every retry and every attempt at these images, a
                                person's publish of a failed post too: dedupe on it)
    X-Ryla-Signature:  t=<unix seconds>,v1=<hex HMAC-SHA256>

where v1 is keyed with the target's signing key over the bytes ``<t>`` + ``.`` + ``<body>``.
A receiver calls ``verify_signature(body, header, signing_key)`` on the raw body before parsing
it; the timestamp bounds replays (five minutes by default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from pipeline.errors import PermanentPublishError, Throttled, TransientPublishError
from pipeline.publishers.base import Checkpoint, PublishRequest, PublishResult

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "WebhookPublisher",
    "build_payload",
    "sign_body",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Ryla-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RETRYABLE = {408, 425}


class WebhookPublisher:
    kind = "webhook"

    def __init__(
        self,
        *,
        client: httpx.Client,
        url: str,
        signing_key: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"webhook url must be http(s), got {url[:40]!r}")
        if not signing_key:
            raise ValueError("a webhook target needs a signing_key in its secrets")
        self.client, self.url, self.clock = client, url, clock
        self._key = signing_key
        # Only the host goes into messages: hook URLs (Zapier, Make) carry a secret path.
        self.host = httpx.URL(url).host

    @classmethod
    def from_target(
        cls, *, config: Mapping[str, Any], secrets: Mapping[str, Any], client: httpx.Client
    ) -> WebhookPublisher:
        """Build from a PublishTarget's ``config`` (url) and decrypted secrets (signing_key)."""
        url = str(secrets.get("url") or config.get("url") or "")
        return cls(client=client, url=url, signing_key=str(secrets.get("signing_key") or ""))

    def publish(self, request: PublishRequest, checkpoint: Checkpoint) -> PublishResult:
        body = json.dumps(build_payload(request), ensure_ascii=False, default=str).encode()
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: request.idempotency_key,
            SIGNATURE_HEADER: sign_body(body, self._key, int(self.clock())),
        }
        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # Repeating is safe: the receiver dedupes on the Idempotency-Key.
            raise TransientPublishError(
                f"webhook {self.host}: no answer ({type(exc).__name__}); will retry"
            ) from None
        return self._result(response, request)

    def _result(self, response: httpx.Response, request: PublishRequest) -> PublishResult:
        status = response.status_code
        if 200 <= status < 300:
            answer = _json_object(response)
            return PublishResult(
                external_id=str(answer.get("id") or request.attempt_id),
                permalink=_str_or_none(answer.get("permalink") or answer.get("url")),
                detail={"status": status},
            )
        what = f"webhook {self.host} answered HTTP {status}"
        if status == 429:  # the receiver asks us to slow down: no try is spent on waiting
            raise Throttled(f"{what}; rate limited", _retry_after(response))
        if status in _RETRYABLE or status >= 500:
            raise TransientPublishError(f"{what}; will retry")
        snippet = response.text[:200].replace("\n", " ").strip()
        raise PermanentPublishError(
            f"{what} ({snippet or 'no body'}); fix the receiver or the target's url, "
            "then publish the post again"
        )


def build_payload(request: PublishRequest) -> dict[str, Any]:
    """What the receiver gets: everything it needs to post, with public image URLs."""
    missing = [item.format for item in request.media if not item.url]
    if missing:
        raise PermanentPublishError(
            f"post {request.post_id}: images {', '.join(missing)} have no public URL; "
            "set RYLA_PUBLIC_BASE_URL so the receiver can fetch them"
        )
    return {
        "event": "post.publish",
        "attempt_id": request.attempt_id,
        "idempotency_key": request.idempotency_key,
        "post_id": request.post_id,
        "handle": request.handle,
        "media_type": request.media_type,
        "publish_at": request.publish_at.isoformat(),
        "caption": request.caption,
        "alt_text": request.alt_text,
        "is_ai_generated": True,
        "images": [
            {"url": m.url, "format": m.format, "content_type": m.content_type, "sha256": m.sha256}
            for m in request.media
        ],
        "metadata": dict(request.metadata),
    }


def sign_body(body: bytes, signing_key: str, timestamp: int) -> str:
    """The ``X-Ryla-Signature`` value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_digest(body, signing_key, timestamp)}"


def verify_signature(
    body: bytes,
    header: str,
    signing_key: str,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """For receivers: True when ``header`` signs the raw ``body`` and is recent enough."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    moment = time.time() if now is None else now
    if abs(moment - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(_digest(body, signing_key, timestamp), parts.get("v1", ""))


def _digest(body: bytes, signing_key: str, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}  # receivers may answer plain "ok"
    return answer if isinstance(answer, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() and int(value) > 0 else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
