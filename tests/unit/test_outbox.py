"""The outbox publisher: whole folders only, and a second publish of a post is a no-op."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.publishers.base import MediaItem, PublishRequest
from pipeline.publishers.outbox import OutboxPublisher


def request(tmp_path: Path) -> PublishRequest:
    image = tmp_path / "feed_portrait.jpg"
    image.write_bytes(b"\xff\xd8jpeg")
    return PublishRequest(
        post_id=7,
        attempt_id="a-1",
        handle="mia",
        caption="Hello\n\n#ryla",
        alt_text="a woman",
        media_type="image",
        media=(MediaItem("feed_portrait", image, None, "image/jpeg", "ab"),),
        publish_at=datetime(2026, 11, 26, 12, tzinfo=UTC),
    )


def no_checkpoint(key: str, value: str) -> None:
    raise AssertionError("the outbox has nothing to checkpoint")


def test_a_post_becomes_one_folder_with_image_caption_and_manifest(tmp_path: Path) -> None:
    result = OutboxPublisher(tmp_path / "out").publish(request(tmp_path), no_checkpoint)
    folder = Path(result.external_id)
    assert folder == tmp_path / "out" / "mia" / "post-000007"
    assert (folder / "caption.txt").read_text() == "Hello\n\n#ryla\n"
    manifest = json.loads((folder / "post.json").read_text())
    assert manifest["images"] == ["01-feed_portrait.jpg"] and manifest["attempt_id"] == "a-1"
    assert (folder / "01-feed_portrait.jpg").read_bytes() == b"\xff\xd8jpeg"


def test_publishing_the_same_post_again_changes_nothing(tmp_path: Path) -> None:
    publisher = OutboxPublisher(tmp_path / "out")
    first = publisher.publish(request(tmp_path), no_checkpoint)
    before = (Path(first.external_id) / "post.json").stat().st_mtime_ns
    second = publisher.publish(request(tmp_path), no_checkpoint)
    assert first == second
    assert (Path(second.external_id) / "post.json").stat().st_mtime_ns == before


def test_a_failed_copy_leaves_no_partial_folder(tmp_path: Path) -> None:
    broken = request(tmp_path)
    broken.media[0].path.unlink()
    with pytest.raises(FileNotFoundError):
        OutboxPublisher(tmp_path / "out").publish(broken, no_checkpoint)
    assert list((tmp_path / "out" / "mia").iterdir()) == []
