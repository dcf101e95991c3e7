"""Log formats: one readable line per record for people, one JSON object per line for shippers.

Both carry the instant with its zone (text: local time and UTC offset; JSON: UTC, ISO 8601),
and the step fields (``post_id``, ``influencer``, ``step``, ``seconds``, ``outcome``) when set.
A process started by ``ryla run`` carries a tag naming it, since their lines share one terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pipeline.settings import LogFormat

__all__ = ["FIELDS", "JsonFormatter", "TextFormatter", "configure_logging", "zoned"]

# Extra record attributes that travel as their own JSON keys (``log.info(..., extra={...})``).
FIELDS = ("post_id", "influencer", "step", "seconds", "outcome", "error_class", "notification")


def zoned(instant: datetime, *, tz: Any = None) -> str:
    """An instant as a person reads it, e.g. "2026-11-30 19:56:01 CET" (default: local zone)."""
    local = instant.astimezone(tz)
    label = local.tzname() or local.strftime("UTC%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {label}"


class TextFormatter(logging.Formatter):
    """``2026-11-30 19:56:01.123+01:00 INFO [tag] name: message``: the offset says which zone;
    the tag, when given, which process."""

    def __init__(self, tag: str = "") -> None:
        shown = f"[{tag}] " if tag else ""
        super().__init__(f"%(asctime)s %(levelname)s {shown}%(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        local = datetime.fromtimestamp(record.created).astimezone()
        return local.isoformat(sep=" ", timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC), ``level``, ``logger``, ``message``, extras,
    and ``tag`` when given."""

    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self.tag = tag

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if self.tag:
            entry["tag"] = self.tag
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(*, level: int, fmt: LogFormat, tag: str = "") -> None:
    """Replace the root handler: every process (and Celery, which keeps its hands off the root
    logger here) writes one format to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(tag) if fmt is LogFormat.JSON else TextFormatter(tag))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if fmt is LogFormat.JSON:
        logging.captureWarnings(True)  # Python warnings become JSON lines too
