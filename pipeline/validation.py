"""Checks shared by every door (CLI, import, API): one function per kind of value.

Each raises ``InputError`` with one line naming the field, the value and the fix.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.errors import InputError
from pipeline.generators.sizes import NATIVE_SIZES

__all__ = [
    "MAX_LEAD_MINUTES",
    "MAX_NAME_CHARS",
    "MAX_PROMPT_CHARS",
    "check_formats",
    "check_lead_minutes",
    "check_lora",
    "check_name",
    "check_presets",
    "check_text",
    "duplicate_of",
    "for_field",
    "inserted_once",
    "shown",
]

MAX_LEAD_MINUTES = 24 * 60
MAX_NAME_CHARS = 100  # the String(100) name columns
# A free-text prompt part (outfit, extra words): the text encoder reads 512 tokens in all.
MAX_PROMPT_CHARS = 500
# A safetensors header is JSON and small; anything claiming more is not one.
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


@contextmanager
def for_field(name: str) -> Iterator[None]:
    """Input errors raised inside are blamed on ``name`` unless they already name a field."""
    try:
        yield
    except InputError as exc:
        if exc.field is None:
            exc.field = name
        raise


def shown(value: str, limit: int = 40) -> str:
    """A value as an error message quotes it: whole when short, its start when long."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value):,} characters)"


def check_text(label: str, value: str, *, field: str, most: int, required: bool = False) -> str:
    """Free text within its column (or its use); ``required`` text must not be blank."""
    if required and not value.strip():
        raise InputError(f"{label} is empty: give one", field=field)
    if len(value) > most:
        raise InputError(
            f"{label} {shown(value)} is too long: use at most {most:,} characters", field=field
        )
    return value


def check_name(label: str, value: str, *, field: str, most: int = MAX_NAME_CHARS) -> str:
    """A name people type and read back on one line: not blank, no control characters."""
    name = check_text(label, value.strip(), field=field, most=most, required=True)
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InputError(
            f"{label} {shown(name)} holds a control character (a line break or tab): "
            "use plain characters",
            field=field,
        )
    return name


def check_presets(kind: str, names: Sequence[str], presets: Collection[str]) -> list[str]:
    for name in names:
        if name not in presets:
            raise InputError(f"unknown {kind} {shown(name)}: choose from {', '.join(presets)}")
    return list(names)


def check_formats(given: Sequence[str]) -> list[str]:
    """Instagram formats by name, in the order given (the first sets a carousel's ratio)."""
    formats = [f.strip() for f in given if f.strip()]
    if not formats:
        raise InputError(f"no format given: choose from {', '.join(NATIVE_SIZES)}", field="formats")
    with for_field("formats"):
        return check_presets("format", formats, NATIVE_SIZES)


def check_lead_minutes(minutes: int) -> int:
    """How long before publishing a post is generated."""
    if not 0 <= minutes <= MAX_LEAD_MINUTES:
        raise InputError(
            f"lead time {minutes} min is out of range: use 0 to {MAX_LEAD_MINUTES}",
            field="lead_minutes",
        )
    return minutes


def check_lora(path: str) -> str:
    """A LoRA file that exists here and is safetensors; its absolute path (workers start elsewhere).

    Pickled weights (.ckpt, .pt, .bin) can run code when loaded, so only safetensors is taken,
    and the file's header is read to make sure it is one, not just named like one.
    """
    given = Path(path).expanduser()
    if given.suffix != ".safetensors":
        raise InputError(
            f"LoRA {shown(path)} is not a .safetensors file: pickled weights can run code, "
            "convert it to safetensors",
            field="lora_path",
        )
    if not given.is_file():
        raise InputError(
            f"LoRA {shown(path)} does not exist: give the path of the .safetensors file "
            "(workers on other machines need it at the same path)",
            field="lora_path",
        )
    if not _looks_like_safetensors(given):
        raise InputError(
            f"LoRA {shown(path)} is not a valid safetensors file (its header does not read): "
            "export it again",
            field="lora_path",
        )
    return str(given.resolve())


def _looks_like_safetensors(path: Path) -> bool:
    # The format: an 8-byte little-endian header length, then that many bytes of JSON.
    try:
        with path.open("rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if not 2 <= length <= min(_MAX_SAFETENSORS_HEADER, path.stat().st_size - 8):
                return False
            header = json.loads(file.read(length))
    except (OSError, struct.error, ValueError):
        return False
    return isinstance(header, dict)


@contextmanager
def inserted_once(session: Session, what: str, fix: str) -> Iterator[None]:
    """Rows added inside are flushed in a savepoint; a unique clash becomes "already exists".

    The door checks for the row first, but two commands racing both pass that check: the
    database's unique constraint decides, and the loser gets the same one line as a late one.
    """
    try:
        with session.begin_nested():
            yield
            session.flush()
    except IntegrityError as exc:
        if duplicate_of(exc) is None:
            raise
        raise InputError(f"{what} already exists: {fix}") from None


def duplicate_of(exc: IntegrityError) -> str | None:
    """The unique constraint (or columns) a clash broke; None for any other integrity error."""
    original = exc.orig
    # PostgreSQL names the violation by SQLSTATE 23505 and the constraint; SQLite in its text.
    if getattr(original, "sqlstate", None) == "23505":
        diag = getattr(original, "diag", None)
        return getattr(diag, "constraint_name", None) or "a unique constraint"
    text = str(original)
    if text.startswith("UNIQUE constraint failed"):
        return text.partition(": ")[2] or "a unique constraint"
    return None
