"""``ryla calendar import``: one-off posts and slot rules from CSV or YAML, all or nothing.

Every row is checked (each in its own savepoint) and every error is listed by row; one bad row
means nothing is imported, because the caller's transaction is rolled back. Files are capped in
size and rows, and YAML is read without aliases (a few bytes of them can expand to gigabytes).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from pipeline.errors import CaptionError, InputError, PromptError, ScheduleError
from pipeline.planning.calendars import add_rule
from pipeline.planning.influencers import get_influencer
from pipeline.planning.posts import PostIn, create_post
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.planning.times import parse_when, zone
from pipeline.settings import Settings

__all__ = [
    "MAX_IMPORT_BYTES",
    "MAX_IMPORT_ROWS",
    "MAX_LISTED_ERRORS",
    "ImportRejected",
    "ImportReport",
    "ImportRow",
    "import_rows",
    "read_rows",
]

MAX_IMPORT_BYTES = 10 * 1024 * 1024
MAX_IMPORT_ROWS = 50_000
MAX_LISTED_ERRORS = 20  # the rest are counted: a person fixes the first ones and runs it again
_MAX_YAML_DEPTH = 10  # a file of rules and posts nests 4 deep

POST_FIELDS = (
    "handle",
    "at",
    "character",
    "scene",
    "environment",
    "outfit",
    "prompt",
    "caption",
    "hashtags",
    "formats",
    "lead_minutes",
)
RULE_FIELDS = (
    "handle",
    "calendar",
    "character",
    "days",
    "times",
    "rrule",
    "start",
    "scenes",
    "environments",
    "outfits",
    "captions",
    "caption",
    "hashtags",
    "formats",
    "lead_minutes",
    "horizon_days",
)
# Lists: a YAML list, or one cell/string; CSV cells separate items with "|".
_LISTS = {"scenes", "environments", "outfits", "captions", "hashtags", "formats"}
# In a YAML string these also split on commas (outfits and captions may contain commas).
_COMMA_LISTS = {"scenes", "environments", "hashtags", "formats"}
_ROW_ERRORS = (InputError, ScheduleError, CaptionError, PromptError)


@dataclass(frozen=True)
class ImportRow:
    number: int  # 1-based, in file order
    line: int  # the line of the file it starts on
    kind: str  # "post" or "rule"
    values: dict[str, Any]  # str, or list[str] for list fields

    @property
    def where(self) -> str:
        return f"row {self.number} (line {self.line}, {self.kind})"


class ImportRejected(InputError):
    """At least one row is wrong: nothing was imported; ``errors`` has one line per problem."""

    def __init__(self, source: str, errors: list[str], total: int) -> None:
        self.errors = errors
        lines = [f"  {e}" for e in errors[:MAX_LISTED_ERRORS]]
        if len(errors) > MAX_LISTED_ERRORS:
            lines.append(f"  … and {len(errors) - MAX_LISTED_ERRORS:,} more problem(s)")
        super().__init__(
            f"{len(errors):,} problem(s) in {total:,} row(s) of {source}; nothing was imported:\n"
            + "\n".join(lines)
        )


@dataclass(frozen=True)
class ImportReport:
    posts: int = 0
    rules: int = 0
    calendars: int = 0  # created by the import


def read_rows(path: Path) -> list[ImportRow]:
    """The rows of a ``.csv`` or ``.yaml``/``.yml`` file, each with its kind and line."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise InputError(f"cannot import {path.name!r}: use a .csv, .yaml or .yml file")
    text = _read_text(path)
    rows = _csv_rows(text, path.name) if suffix == ".csv" else _yaml_rows(text, path.name)
    if not rows:
        raise InputError(f"{path.name!r} has no rows: nothing to import")
    if len(rows) > MAX_IMPORT_ROWS:
        raise InputError(
            f"{path.name!r} has {len(rows):,} rows: import at most {MAX_IMPORT_ROWS:,} at a time "
            "(split the file)"
        )
    return rows


def _read_text(path: Path) -> str:
    try:
        if not path.is_file():
            raise InputError(f"cannot import {str(path)!r}: it is not a file")
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise InputError(
                f"{path.name!r} is {size:,} bytes: import at most {MAX_IMPORT_BYTES:,} bytes at "
                "a time (split the file)"
            )
        return path.read_text(encoding="utf-8-sig")  # a BOM from spreadsheet exports is fine
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path.name!r} is not UTF-8 text (byte {exc.start + 1:,}): save it as UTF-8 "
            "(CSV UTF-8 in spreadsheet apps) and import it again"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc}") from None


def _csv_rows(text: str, source: str) -> list[ImportRow]:
    reader = csv.DictReader(io.StringIO(text), restkey="(extra cells)")
    known = {"kind", *POST_FIELDS, *RULE_FIELDS}
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise ImportRejected(source, [f"line 1: not valid CSV ({exc})"], 0) from None
    unknown = [name for name in header if name not in known]
    if unknown or "kind" not in header:
        problem = f"unknown column {unknown[0]!r}" if unknown else "no 'kind' column"
        error = f"line 1: {problem}: columns are kind, {', '.join(sorted(known - {'kind'}))}"
        raise ImportRejected(source, [error], 0)
    rows = []
    try:
        for number, record in enumerate(reader, start=1):
            values = {k: _csv_value(k, v) for k, v in record.items() if v not in (None, "", [])}
            kind = str(values.pop("kind", "")).strip().lower()
            rows.append(ImportRow(number, reader.line_num, kind, values))
    except csv.Error as exc:  # a cell over the csv module's limit, a NUL byte …
        raise ImportRejected(
            source, [f"line {reader.line_num}: not valid CSV ({exc})"], 0
        ) from None
    return rows


def _csv_value(name: str, cell: str | list[str]) -> str | list[str]:
    if isinstance(cell, list):  # cells past the header's columns
        return [str(c) for c in cell]
    if name in _LISTS:
        return [item.strip() for item in cell.split("|") if item.strip()]
    return cell.strip()


def _yaml_rows(text: str, source: str) -> list[ImportRow]:
    try:
        # BaseLoader keeps every scalar a string: "09:00" must not become 540 (YAML 1.1 base 60).
        root = yaml.compose(text, Loader=_ImportLoader)
    except yaml.YAMLError as exc:
        raise ImportRejected(source, [_yaml_problem(exc)], 0) from None
    if not isinstance(root, yaml.MappingNode):
        error = "the file must be a mapping with 'rules:' and/or 'posts:'"
        raise ImportRejected(source, [error], 0)
    rows: list[ImportRow] = []
    for key, section in root.value:
        kind = {"rules": "rule", "posts": "post"}.get(key.value)
        if kind is None or not isinstance(section, yaml.SequenceNode):
            line = key.start_mark.line + 1
            error = f"line {line}: {key.value!r} is not a list of rules or posts"
            raise ImportRejected(source, [error], 0)
        for item in section.value:
            values = _plain(item) if isinstance(item, yaml.MappingNode) else {"?": _plain(item)}
            rows.append(ImportRow(len(rows) + 1, item.start_mark.line + 1, kind, values))
    return rows


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where, and what (PyYAML's own text repeats the line with a caret under it)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}not valid YAML: {problem}"


class _ImportLoader(yaml.BaseLoader):
    """BaseLoader (every scalar stays a string) that refuses aliases and deep nesting.

    An alias makes many places share one node; converting the nodes to values copies it each
    time, so a kilobyte of nested aliases becomes gigabytes (the "billion laughs").
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not allowed in an import: write the values out",
                problem_mark=self.peek_event().start_mark,
            )
        if self._depth >= _MAX_YAML_DEPTH:
            raise yaml.MarkedYAMLError(
                problem=f"nested more than {_MAX_YAML_DEPTH} levels deep",
                problem_mark=self.peek_event().start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _plain(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {str(_plain(k)): _plain(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    return node.value


def import_rows(
    session: Session, rows: list[ImportRow], *, source: str, settings: Settings, now: datetime
) -> ImportReport:
    """Apply every row; if any is wrong raise ``ImportRejected`` listing all of them.

    The caller rolls back on that error, so a rejected import writes nothing.
    """
    errors: list[str] = []
    counts: Counter[str] = Counter()
    for row in rows:
        try:
            with session.begin_nested():
                counts.update(_apply(session, row, settings, now))
        except _ROW_ERRORS as exc:
            errors.append(f"{row.where}: {exc}")
    if errors:
        raise ImportRejected(source, errors, len(rows))
    return ImportReport(posts=counts["post"], rules=counts["rule"], calendars=counts["calendar"])


def _apply(session: Session, row: ImportRow, settings: Settings, now: datetime) -> list[str]:
    if row.kind not in ("post", "rule"):
        raise InputError(f"kind {row.kind!r} is not 'post' or 'rule'")
    allowed = POST_FIELDS if row.kind == "post" else RULE_FIELDS
    for name in row.values:
        if name not in allowed:
            raise InputError(f"field {name!r} does not apply here: use {', '.join(allowed)}")
    for name in ("handle", "at") if row.kind == "post" else ("handle", "calendar"):
        if not _text(row, name):
            raise InputError(f"{name} is missing")
    if row.kind == "post":
        _import_post(session, row, settings, now)
        return ["post"]
    return _import_rule(session, row, settings, now)


def _import_rule(session: Session, row: ImportRow, settings: Settings, now: datetime) -> list[str]:
    _, created = add_rule(
        session=session,
        handle=_text(row, "handle") or "",
        calendar_name=_text(row, "calendar") or "",
        rule=RuleIn(
            days=_text(row, "days"),
            times=_text(row, "times"),
            rrule=_text(row, "rrule"),
            start=_text(row, "start"),
            scenes=_list(row, "scenes"),
            environments=_list(row, "environments"),
            outfits=_list(row, "outfits"),
            caption_templates=_list(row, "captions"),
            caption_text=_text(row, "caption"),
            hashtags=_list(row, "hashtags"),
        ),
        settings_in=CalendarSettingsIn(
            lead_minutes=_int(row, "lead_minutes"),
            formats=_list(row, "formats"),
            horizon_days=_int(row, "horizon_days"),
        ),
        character=_text(row, "character"),
        settings=settings,
        now=now,
    )
    return ["rule", "calendar"] if created else ["rule"]


def _import_post(session: Session, row: ImportRow, settings: Settings, now: datetime) -> None:
    handle, when = _text(row, "handle") or "", _text(row, "at") or ""
    at = parse_when(when, zone(get_influencer(session, handle).timezone), now)
    lead = _int(row, "lead_minutes")
    formats = _list(row, "formats") or ["feed_portrait"]
    data = PostIn(
        publish_at=at,
        character=_text(row, "character"),
        scene=_text(row, "scene") or "",
        environment=_text(row, "environment") or "",
        outfit=_text(row, "outfit") or "",
        prompt_extra=_text(row, "prompt") or "",
        caption_text=_text(row, "caption") or "",
        hashtags=_list(row, "hashtags") or [],
        formats=formats,
        lead_minutes=30 if lead is None else lead,
    )
    create_post(session=session, handle=handle, data=data, settings=settings, now=now)


def _text(row: ImportRow, name: str) -> str | None:
    value = row.values.get(name)
    if value is None:
        return None
    if name in ("days", "times"):  # "mon,wed", "mon|wed" or a YAML list all mean the same
        items = _strings(name, value) if isinstance(value, list) else str(value).split("|")
        return ",".join(items)
    if isinstance(value, list):
        raise InputError(f"{name} takes one value, not a list")
    return str(value)


def _list(row: ImportRow, name: str) -> list[str] | None:
    value = row.values.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        return list(_strings(name, value))
    parts = str(value).split(",") if name in _COMMA_LISTS else [str(value)]
    return [part.strip() for part in parts]


def _strings(name: str, values: list[Any]) -> Iterator[str]:
    for value in values:
        if not isinstance(value, str):
            raise InputError(f"{name} must list plain values, not {value!r}")
        yield value


def _int(row: ImportRow, name: str) -> int | None:
    text = _text(row, name)
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name} {text!r} is not a whole number") from None
