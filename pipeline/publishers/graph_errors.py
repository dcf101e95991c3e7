"""How Meta's Graph API errors map onto the publish error tree, and how tokens stay out of text.

PublishError (pipeline.publishers.base)
├── TransientPublishError
│   ├── GraphThrottled        codes 4, 17, 32, 613, 80002: wait ``retry_after`` seconds
│   ├── ContainerNotReady     subcode 2207027: keep polling the container, then publish
│   └── AnswerLost            the request may have arrived, no usable answer came back
├── PermanentPublishError
│   └── PublishingRestricted  subcode 2207051 (suspected spam): stop, never retry
├── AuthExpired               codes 190, 10, 200-299
└── QuotaExceeded             subcode 2207042
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import (
    AuthExpired,
    PermanentPublishError,
    PublishError,
    QuotaExceeded,
    Throttled,
    TransientPublishError,
)

__all__ = [
    "AUTH_CODES",
    "NOT_READY_SUBCODE",
    "PERMANENT_SUBCODES",
    "QUOTA_SUBCODE",
    "SPAM_SUBCODE",
    "THROTTLE_CODES",
    "TRANSIENT_CODES",
    "TRANSIENT_SUBCODES",
    "AnswerLost",
    "ContainerNotReady",
    "GraphError",
    "GraphThrottled",
    "PublishingRestricted",
    "classify_graph_error",
    "install_log_scrubber",
    "raise_for_container_error",
    "retry_after_from_headers",
    "scrub",
]

TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80002})
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80002})
TRANSIENT_SUBCODES = frozenset({2207001, 2207003, 2207008, 2207032})
PERMANENT_SUBCODES = frozenset({2207004, 2207005, 2207009, 2207010, 2207023, 2207028, 2207040})
AUTH_CODES = frozenset({190, 10, *range(200, 300)})
NOT_READY_SUBCODE = 2207027
QUOTA_SUBCODE = 2207042
SPAM_SUBCODE = 2207051

_CONTAINER_SUBCODE = re.compile(r"\b(22\d{5})\b")
# Query and form fields that carry credentials in Graph API traffic.
_SECRET_FIELDS = re.compile(
    r"(?i)\b(access_token|client_secret|fb_exchange_token|input_token)=([^&\s\"'<>]+)"
)


class GraphThrottled(Throttled):
    """A Graph API rate limit: hammering will not help, come back after ``retry_after`` s."""


class ContainerNotReady(TransientPublishError):
    """media_publish came before the container finished processing."""


class AnswerLost(TransientPublishError):
    """The request may have reached Meta, but no usable answer came back.

    Harmless for reads; after a ``media_publish`` it means "ask the container first".
    """


class PublishingRestricted(PermanentPublishError):
    """Instagram suspects spam and restricts publishing: a person must look at the account."""


@dataclass(frozen=True)
class GraphError:
    """The ``error`` object of a Graph API answer."""

    message: str
    code: int | None = None
    subcode: int | None = None
    is_transient: bool = False
    user_message: str | None = None
    fbtrace_id: str | None = None

    @classmethod
    def from_body(cls, body: object) -> GraphError | None:
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping):
            return None
        return cls(
            message=str(error.get("message") or "no message"),
            code=_as_int(error.get("code")),
            subcode=_as_int(error.get("error_subcode")),
            is_transient=bool(error.get("is_transient", False)),
            user_message=_as_str(error.get("error_user_msg")),
            fbtrace_id=_as_str(error.get("fbtrace_id")),
        )

    def describe(self) -> str:
        """Meta's own words, with the numbers a support ticket needs."""
        text = self.message
        if self.user_message and self.user_message not in text:
            text = f"{text} {self.user_message}"
        numbers = [f"code {self.code}"] if self.code is not None else []
        if self.subcode is not None:
            numbers.append(f"subcode {self.subcode}")
        if self.fbtrace_id:
            numbers.append(f"fbtrace_id {self.fbtrace_id}")
        return f"{text} ({', '.join(numbers)})" if numbers else text


def classify_graph_error(
    error: GraphError,
    *,
    action: str,
    http_status: int,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
) -> PublishError:
    """The publish error a Graph API error stands for; subcodes win over codes.

    Subcodes come first because Meta reuses broad codes: 2207051 (spam) arrives with code 4,
    which alone would read as throttling.
    """
    what = f"Instagram {action} failed: {scrub(error.describe(), secrets)}"
    if error.subcode == QUOTA_SUBCODE:
        return QuotaExceeded(f"{what}; the daily publishing quota is used up")
    if error.subcode == SPAM_SUBCODE:
        return PublishingRestricted(
            f"{what}; Instagram suspects spam: open the account in the Instagram app, "
            "clear any warning, then publish by hand (no automatic retry)"
        )
    if error.subcode == NOT_READY_SUBCODE:
        return ContainerNotReady(f"{what}; the container is still processing")
    if error.subcode in PERMANENT_SUBCODES:
        return PermanentPublishError(f"{what}; change the post and publish it again")
    if error.subcode in TRANSIENT_SUBCODES:
        return TransientPublishError(f"{what}; will retry")
    return _classify_by_code(error, what, http_status, retry_after)


def _classify_by_code(
    error: GraphError, what: str, http_status: int, retry_after: float | None
) -> PublishError:
    if error.code in AUTH_CODES:
        return AuthExpired(f"{what}; re-authorise the Instagram account for this target")
    if error.code in THROTTLE_CODES:
        # Said without "will retry": whether it will depends on the post's throttle budget.
        return GraphThrottled(f"{what}; rate limited", retry_after)
    if error.code in TRANSIENT_CODES or error.is_transient:
        return TransientPublishError(f"{what}; will retry")
    if http_status >= 500:
        return AnswerLost(f"{what}; Meta answered HTTP {http_status}")
    return PermanentPublishError(f"{what}; retrying will not help")


def raise_for_container_error(container_id: str, status: str) -> None:
    """Raise when a container's ERROR names the media itself; return when a new one may work.

    Meta puts the error subcode in the container's ``status`` field.
    """
    found = _CONTAINER_SUBCODE.search(status)
    subcode = int(found.group(1)) if found else None
    what = f"Instagram could not process container {container_id}: {status or 'ERROR'}"
    if subcode == SPAM_SUBCODE:
        raise PublishingRestricted(f"{what}; Instagram suspects spam: no automatic retry")
    if subcode in PERMANENT_SUBCODES:
        raise PermanentPublishError(f"{what}; change the post and publish it again")


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """Seconds until Meta lifts a rate limit, from its usage headers (or a plain Retry-After)."""
    plain = headers.get("retry-after")
    if plain and plain.strip().isdigit():
        return float(plain.strip()) or None
    raw = headers.get("x-business-use-case-usage")
    minutes: list[float] = []
    try:
        usage = json.loads(raw) if raw else {}
        for entries in usage.values():
            minutes += [float(e.get("estimated_time_to_regain_access", 0)) for e in entries]
    except (ValueError, TypeError, AttributeError):
        return None  # a header we cannot read is no reason to fail the publish
    return max(minutes) * 60 if minutes and max(minutes) > 0 else None


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with access tokens (and any of ``secrets``) replaced by ``***``."""
    text = _SECRET_FIELDS.sub(lambda m: f"{m.group(1)}=***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _ScrubbingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_scrubber(logger_names: Iterable[str] = ("httpx", "httpcore")) -> None:
    """Scrub tokens from what httpx logs: it writes every request URL at INFO level."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubbingFilter) for f in logger.filters):
            logger.addFilter(_ScrubbingFilter())


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _as_str(value: Any) -> str | None:
    return str(value) if value else None
