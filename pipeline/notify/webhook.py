"""Notifications as a signed JSON POST, in the shape the receiver expects: Slack (``text``),
Discord (``content``) or a plain event object for n8n, Make, Zapier or your own receiver.

Every request carries ``Idempotency-Key: <notification id>`` and ``X-Ryla-Signature`` (the
publishing webhook's scheme: ``t=<unix>,v1=<HMAC-SHA256 of "<t>." + body>`` with the channel's
signing key). Only the receiver's host ever appears in a message: hook URLs hold their secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from pipeline.errors import DeliveryUnknown, NotDelivered
from pipeline.notify.channels import webhook_format
from pipeline.notify.message import Checkpoint, Outgoing
from pipeline.publishers.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign_body

__all__ = ["DISCORD_LIMIT", "build_webhook_payload", "send_webhook"]

DISCORD_LIMIT = 2000  # characters of ``content`` Discord accepts
_RETRYABLE = {408, 425, 429}


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions): escape what we did not write.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_webhook_payload(message: Outgoing, fmt: str) -> dict[str, Any]:
    if fmt == "slack":
        return {"text": f"*{_slack_escape(message.title)}*\n{_slack_escape(message.body)}"}
    if fmt == "discord":
        content = f"**{message.title}**\n{message.body}"
        if len(content) > DISCORD_LIMIT:
            content = content[: DISCORD_LIMIT - 1] + "…"
        # No pings: a caption quoted in a message must not reach @everyone.
        return {"content": content, "username": "RYLA", "allowed_mentions": {"parse": []}}
    return {
        "event": "ryla.notification",
        "id": message.id,
        "cause": message.cause,
        "title": message.title,
        "text": message.body,
        "items": message.items,
        "window_start": message.window_start.isoformat(),
        "created_at": message.created_at.isoformat(),
        "channel": message.channel,
    }


def send_webhook(
    message: Outgoing,
    checkpoint: Checkpoint,
    *,
    client: httpx.Client,
    clock: Callable[[], float] = time.time,
) -> str:
    url = str(message.secrets.get("url") or "")
    host = httpx.URL(url).host if url else "-"
    fmt = webhook_format(message.config, host)
    body = json.dumps(build_webhook_payload(message, fmt), ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: message.id,
        SIGNATURE_HEADER: sign_body(
            body, str(message.secrets.get("signing_key") or ""), int(clock())
        ),
    }
    checkpoint()
    try:
        response = client.post(url, content=body, headers=headers, timeout=httpx.Timeout(10.0))
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise NotDelivered(f"{host}: no connection ({type(exc).__name__})", retry=True) from None
    except httpx.HTTPError as exc:
        raise DeliveryUnknown(
            f"{host}: the answer was lost ({type(exc).__name__}); it may have arrived"
        ) from None
    return _answer(response, host)


def _answer(response: httpx.Response, host: str) -> str:
    status = response.status_code
    if 200 <= status < 300:
        return f"{host} answered HTTP {status}"
    what = f"{host} answered HTTP {status}"
    if status in _RETRYABLE or status >= 500:
        raise NotDelivered(f"{what}; will try again", retry=True)
    snippet = " ".join(response.text[:120].split())
    raise NotDelivered(
        f"{what} ({snippet or 'no body'}): the hook may have been removed; check it, then "
        "`ryla notify remove` and `ryla notify add` it again",
        retry=False,
    )
