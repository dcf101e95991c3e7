"""Imports uploaded through the studio (API and page): the whole file or a refusal, never a
truncated file, checked and applied by the same ``planning.imports`` the CLI uses.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.datastructures import UploadFile

from admin.studio.core import Studio
from pipeline.planning.imports import MAX_IMPORT_BYTES, ImportReport, import_rows, read_rows

__all__ = ["import_upload", "read_upload"]


async def read_upload(upload: UploadFile) -> tuple[str, bytes]:
    """The file's own name and its bytes, one byte past the cap so an oversize file is refused
    by the size check rather than cut short and half imported."""
    name = Path(upload.filename or "").name
    if name in ("", ".", ".."):  # no file name to go by: CSV, the studio's own export
        name = "upload.csv"
    return name, await upload.read(MAX_IMPORT_BYTES + 1)


def import_upload(studio: Studio, name: str, data: bytes) -> ImportReport:
    """Apply an uploaded plan, all or nothing; raises ImportRejected or InputError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        rows = read_rows(path)
        with studio.session() as session:
            return import_rows(
                session, rows, source=name, settings=studio.settings, now=studio.clock()
            )
