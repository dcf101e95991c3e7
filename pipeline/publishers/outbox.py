"""The outbox publisher: one folder per post with the images, caption.txt and post.json.

The folder appears whole or not at all (built in a temp folder, then renamed into place).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from pipeline.publishers.base import Checkpoint, PublishRequest, PublishResult

__all__ = ["OutboxPublisher"]


class OutboxPublisher:
    kind = "outbox"

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder_for(self, request: PublishRequest) -> Path:
        return self.root / request.handle / f"post-{request.post_id:06d}"

    def publish(self, request: PublishRequest, checkpoint: Checkpoint) -> PublishResult:
        final = self.folder_for(request)
        if final.is_dir():
            # Already out (an earlier delivery got this far): publishing again must not duplicate.
            return self._result(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-"))
        try:
            names = []
            for index, item in enumerate(request.media, start=1):
                name = f"{index:02d}-{item.format}{item.path.suffix}"
                shutil.copyfile(item.path, staging / name)
                names.append(name)
            (staging / "caption.txt").write_text(request.caption + "\n", encoding="utf-8")
            (staging / "post.json").write_text(
                json.dumps(self._manifest(request, names), indent=2, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
            staging.rename(final)
        except OSError:
            if not final.is_dir():  # a duplicate delivery that won the rename is not an error
                raise
        finally:
            # Whatever stopped us (an OS error, a time limit), no half-written folder remains.
            shutil.rmtree(staging, ignore_errors=True)
        return self._result(final)

    def _manifest(self, request: PublishRequest, names: list[str]) -> dict[str, object]:
        return {
            "post_id": request.post_id,
            "attempt_id": request.attempt_id,
            "handle": request.handle,
            "publish_at": request.publish_at.isoformat(),
            "media_type": request.media_type,
            "images": names,
            "sha256": {n: m.sha256 for n, m in zip(names, request.media, strict=True)},
            "caption": request.caption,
            "alt_text": request.alt_text,
            "is_ai_generated": True,
            **request.metadata,
        }

    @staticmethod
    def _result(folder: Path) -> PublishResult:
        return PublishResult(external_id=str(folder), permalink=folder.as_uri())
