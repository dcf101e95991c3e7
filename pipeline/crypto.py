"""Secrets at rest: a publish target's credentials as one Fernet token, keyed from RYLA_SECRET_KEY.

Each use gets its own key, derived from the app secret with HKDF; the app secret signs nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipeline.errors import SecretsError

__all__ = ["SecretsError", "decrypt_secrets", "derive_key", "encrypt_secrets", "rotate_secrets"]

# Fixed and public on purpose: HKDF's salt separates this application's keys, it is no secret.
_SALT = b"ryla-pipeline hkdf salt v1"
_TARGET_SECRETS = "publish-target secrets v1"


def derive_key(app_secret: str, purpose: str, *, length: int = 32) -> bytes:
    """A key for one ``purpose``; different purposes never share key material."""
    if not app_secret:
        raise SecretsError("no secret key: set RYLA_SECRET_KEY (32+ random characters)")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=purpose.encode())
    return hkdf.derive(app_secret.encode("utf-8"))


def _fernet(app_secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(app_secret, _TARGET_SECRETS)))


def encrypt_secrets(values: Mapping[str, Any], app_secret: str) -> str:
    """The Fernet token (ASCII text) of ``values`` as JSON, for ``secrets_encrypted``."""
    data = json.dumps(dict(values), sort_keys=True, separators=(",", ":")).encode("utf-8")
    return _fernet(app_secret).encrypt(data).decode("ascii")


def decrypt_secrets(
    token: str, app_secret: str, *, previous_secrets: Sequence[str] = ()
) -> dict[str, Any]:
    """The secrets in ``token``; ``previous_secrets`` still open tokens made before a key change."""
    box = MultiFernet([_fernet(secret) for secret in (app_secret, *previous_secrets)])
    try:
        data = box.decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise SecretsError(
            "cannot decrypt the publish target's secrets: they were encrypted with another "
            "RYLA_SECRET_KEY or altered; restore that key or enter the target's secrets again"
        ) from None
    values = json.loads(data)
    if not isinstance(values, dict):
        raise SecretsError("the publish target's secrets are not a JSON object; enter them again")
    return values


def rotate_secrets(token: str, app_secret: str, *, previous_secrets: Sequence[str]) -> str:
    """``token`` re-encrypted under ``app_secret``, after RYLA_SECRET_KEY changed."""
    return encrypt_secrets(
        decrypt_secrets(token, app_secret, previous_secrets=previous_secrets), app_secret
    )
