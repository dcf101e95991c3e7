"""Secrets at rest (Fernet, key from RYLA_SECRET_KEY via HKDF) and signed, expiring media URLs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.crypto import decrypt_secrets, derive_key, encrypt_secrets, rotate_secrets
from pipeline.errors import MediaUrlError, SecretsError
from pipeline.media.urls import sign_media_url, verify_media_signature, verify_media_url
from pipeline.settings import get_settings, load_secret_key

APP_SECRET = "app-secret-for-tests-0123456789abcdefghij"
OTHER_SECRET = "another-app-secret-0123456789abcdefghijk"
BASE = "https://ryla.example.test"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_secrets_round_trip_and_are_not_readable_at_rest() -> None:
    values = {"access_token": "IGAAsecret-token", "ig_app_secret": "shh"}
    token = encrypt_secrets(values, APP_SECRET)
    assert token.isascii() and "IGAAsecret-token" not in token
    assert decrypt_secrets(token, APP_SECRET) == values


def test_a_wrong_key_gives_one_clear_line() -> None:
    token = encrypt_secrets({"access_token": "x"}, APP_SECRET)
    with pytest.raises(SecretsError) as caught:
        decrypt_secrets(token, OTHER_SECRET)
    message = str(caught.value)
    assert "\n" not in message and "RYLA_SECRET_KEY" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("token", ["not-a-token", "gAAAAAB" + "A" * 80, "ünïcode"])
def test_tampered_or_garbage_tokens_are_refused(token: str) -> None:
    with pytest.raises(SecretsError):
        decrypt_secrets(token, APP_SECRET)


def test_an_old_key_still_opens_tokens_until_they_are_rotated() -> None:
    old = encrypt_secrets({"access_token": "x"}, OTHER_SECRET)
    assert decrypt_secrets(old, APP_SECRET, previous_secrets=[OTHER_SECRET]) == {
        "access_token": "x"
    }
    rotated = rotate_secrets(old, APP_SECRET, previous_secrets=[OTHER_SECRET])
    assert decrypt_secrets(rotated, APP_SECRET) == {"access_token": "x"}


def test_keys_differ_per_purpose_and_never_equal_the_app_secret() -> None:
    fernet_key = derive_key(APP_SECRET, "publish-target secrets v1")
    url_key = derive_key(APP_SECRET, "media urls v1")
    assert fernet_key != url_key and APP_SECRET.encode() not in (fernet_key, url_key)
    with pytest.raises(SecretsError, match="RYLA_SECRET_KEY"):
        derive_key("", "anything")


def test_the_embedded_default_key_works_end_to_end(tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path, secret_key="", database_url="")
    key = load_secret_key(settings)
    assert decrypt_secrets(encrypt_secrets({"a": 1}, key), load_secret_key(settings)) == {"a": 1}


def test_media_url_is_us_ascii_with_an_encoded_key_and_query() -> None:
    key = "posts/12/g1/café au lait.jpg"
    url = sign_media_url(key, NOW + timedelta(hours=1), APP_SECRET, base_url=BASE + "/")
    assert url.isascii() and " " not in url
    assert url.startswith(f"{BASE}/media/posts/12/g1/caf%C3%A9%20au%20lait.jpg?expires=")
    assert verify_media_url(url, APP_SECRET, base_url=BASE, now=NOW) == key


def test_media_url_under_a_base_path_verifies_from_path_and_query_alone() -> None:
    url = sign_media_url("a/b.jpg", NOW + timedelta(minutes=5), APP_SECRET, base_url=BASE + "/ryla")
    path_and_query = url.removeprefix(BASE)
    assert path_and_query.startswith("/ryla/media/a/b.jpg?")
    assert (
        verify_media_url(path_and_query, APP_SECRET, base_url=BASE + "/ryla", now=NOW) == "a/b.jpg"
    )


def test_expired_media_url_is_refused() -> None:
    url = sign_media_url("a.jpg", NOW - timedelta(seconds=1), APP_SECRET, base_url=BASE)
    with pytest.raises(MediaUrlError, match="expired"):
        verify_media_url(url, APP_SECRET, now=NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda u: u.replace("a.jpg", "b.jpg"),
        lambda u: u.replace("expires=", "expires=9"),
        lambda u: u[:-3] + "AAA",
        lambda u: u.split("&sig=")[0],
    ],
    ids=["other-key", "later-expiry", "forged-signature", "no-signature"],
)
def test_tampered_media_urls_are_refused(tamper: Callable[[str], str]) -> None:
    url = sign_media_url("a.jpg", NOW + timedelta(hours=1), APP_SECRET, base_url=BASE)
    with pytest.raises(MediaUrlError):
        verify_media_url(tamper(url), APP_SECRET, now=NOW)


def test_media_url_signed_with_another_secret_is_refused() -> None:
    url = sign_media_url("a.jpg", NOW + timedelta(hours=1), OTHER_SECRET, base_url=BASE)
    with pytest.raises(MediaUrlError, match="signature"):
        verify_media_url(url, APP_SECRET, now=NOW)


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs.jpg", "", "a/../../b.jpg"])
def test_keys_outside_the_store_are_refused(key: str) -> None:
    with pytest.raises(MediaUrlError):
        sign_media_url(key, NOW, APP_SECRET, base_url=BASE)
    with pytest.raises(MediaUrlError):
        verify_media_signature(key, expires=0, signature="x", secret=APP_SECRET, now=NOW)


def test_naive_expiry_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        sign_media_url("a.jpg", datetime(2026, 1, 1), APP_SECRET, base_url=BASE)
