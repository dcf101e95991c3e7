"""Helpers for the studio's tests: users and tokens, signing in through the real form, and
posts with real image files and asset rows (as a render would leave them)."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
from sqlalchemy.orm import Session

from admin.access import create_token, create_user
from models import Asset, AssetKind, Role, TokenScope
from pipeline.media.storage import LocalStorage

PASSWORD = "correct-horse-battery"


def add_user(session: Session, name: str, role: Role) -> None:
    create_user(session=session, username=name, password=PASSWORD, role=role)


def add_token(session: Session, name: str, scope: TokenScope, now: datetime) -> str:
    return create_token(
        session=session, username=name, name=f"{name}-{scope}", scope=scope, now=now
    )


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    """Through the sign-in form, as a browser does: its token comes from the page."""
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    return client.post(
        "/login",
        data={"username": name, "password": password, "login_token": token.group(1)},
        follow_redirects=False,
    )


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/status")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def add_images(
    session: Session, storage: LocalStorage, post_id: int, generation: int, count: int = 1
) -> list[str]:
    """Rendition and thumbnail files of one generation, with their asset rows; their keys."""
    keys = []
    for index in range(count):
        _store(session, storage, post_id, generation, AssetKind.RAW, f"raw-{index + 1:02d}")
        name = f"{index + 1:02d}-feed_portrait"
        keys.append(_store(session, storage, post_id, generation, AssetKind.RENDITION, name))
    keys.append(_store(session, storage, post_id, generation, AssetKind.THUMBNAIL, "thumbnail"))
    return keys


def _store(
    session: Session,
    storage: LocalStorage,
    post_id: int,
    generation: int,
    kind: AssetKind,
    name: str,
) -> str:
    key = f"posts/{post_id}/g{generation}/{name}.jpg"
    stored = storage.put(key, b"\xff\xd8\xff" + name.encode() + b"\xff\xd9")
    session.add(
        Asset(
            post_id=post_id,
            generation=generation,
            kind=kind,
            format=name,
            storage_key=key,
            content_type="image/jpeg",
            width=1080,
            height=1350,
            bytes=stored.size,
            sha256=stored.sha256,
            meta={"generator": "preview", "preview": True},
        )
    )
    return key
