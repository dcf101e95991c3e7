"""Checking a publish target without publishing: the outbox folder is writable, the webhook
answers a signed test event, the Instagram token reads the account's publishing quota.

Nothing is posted; a secret never appears in the answer.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from models import PublishTarget, TargetKind
from pipeline.crypto import decrypt_secrets
from pipeline.errors import PublishError, SecretsError
from pipeline.publishers import build_publisher
from pipeline.publishers.instagram import InstagramPublisher
from pipeline.publishers.webhook import SIGNATURE_HEADER, sign_body
from pipeline.settings import Settings, load_secret_key

__all__ = ["TEST_EVENT", "TargetCheck", "check_target"]

TEST_EVENT = "ryla.test"


@dataclass(frozen=True)
class TargetCheck:
    ok: bool
    detail: str
    quota_left: int | None = None


def check_target(
    target: PublishTarget, *, settings: Settings, client: httpx.Client, now: datetime
) -> TargetCheck:
    try:
        if target.kind is TargetKind.OUTBOX:
            return _check_outbox(Path(target.config.get("path") or settings.outbox_dir))
        if target.kind is TargetKind.WEBHOOK:
            return _check_webhook(target, settings=settings, client=client, now=now)
        return _check_instagram(target, settings=settings, client=client, now=now)
    except (PublishError, SecretsError, ValueError) as exc:
        return TargetCheck(False, str(exc))


def _check_outbox(folder: Path) -> TargetCheck:
    probe = folder / f".ryla-check-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return TargetCheck(False, f"outbox folder {str(folder)!r} is not writable: {exc.strerror}")
    return TargetCheck(True, f"outbox folder {str(folder)!r} is writable")


def _check_webhook(
    target: PublishTarget, *, settings: Settings, client: httpx.Client, now: datetime
) -> TargetCheck:
    values = decrypt_secrets(target.secrets_encrypted or "", load_secret_key(settings))
    url, key = str(values.get("url") or ""), str(values.get("signing_key") or "")
    if not url or not key:
        return TargetCheck(False, "the webhook has no url or signing key: enter them again")
    body = json.dumps({"event": TEST_EVENT, "target": target.name, "sent_at": now.isoformat()})
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_body(body.encode(), key, int(now.timestamp())),
    }
    host = httpx.URL(url).host  # the path of a hook URL is its secret
    try:
        response = client.post(url, content=body.encode(), headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        return TargetCheck(False, f"webhook {host}: no answer ({type(exc).__name__})")
    ok = 200 <= response.status_code < 300
    return TargetCheck(ok, f"webhook {host} answered HTTP {response.status_code} to a test event")


def _check_instagram(
    target: PublishTarget, *, settings: Settings, client: httpx.Client, now: datetime
) -> TargetCheck:
    publisher = build_publisher(target, settings=settings, client=client, clock=lambda: now)
    assert isinstance(publisher, InstagramPublisher)
    quota = publisher.content_publishing_limit()
    return TargetCheck(
        quota.remaining > 0,
        f"token works; {quota.remaining} of {quota.total} posts left in the publishing window",
        quota.remaining,
    )
