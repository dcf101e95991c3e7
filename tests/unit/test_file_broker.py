"""The server-less broker writes each message whole, and one reader takes it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection
from kombu.transport import filesystem

from pipeline.settings import get_settings
from tasks import file_broker
from tasks.app import create_app


def options(folder: Path) -> dict[str, Any]:
    for sub in ("queue", "processed"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


@contextmanager
def channel_pair(folder: Path, transport: Any) -> Iterator[list[Any]]:
    """Two channels on one folder, as two processes (producer and consumer) would have."""
    opened = [Connection(transport=transport, transport_options=options(folder)) for _ in range(2)]
    try:
        yield [connection.default_channel for connection in opened]
    finally:
        for connection in opened:
            connection.release()


@pytest.fixture
def channels(tmp_path: Path) -> Iterator[list[Any]]:
    with channel_pair(tmp_path, file_broker.Transport) as pair:
        yield pair


def mid_write(module: Any, monkeypatch: pytest.MonkeyPatch, look: Callable[[], Any]) -> list[Any]:
    """Call ``look`` (another process's read) whenever ``module`` serialises what it is about
    to write; what it saw, in order ("empty" for an empty queue)."""
    seen: list[Any] = []
    real = module.dumps

    def dumps_and_look(value: Any) -> str:
        try:
            seen.append(look())
        except Empty:
            seen.append("empty")
        return str(real(value))

    monkeypatch.setattr(module, "dumps", dumps_and_look)
    return seen


def test_a_reader_polling_while_a_message_is_written_sees_nothing_then_all_of_it(
    channels: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = channels
    seen = mid_write(file_broker, monkeypatch, lambda: reader._get("cpu"))

    writer._put("cpu", {"task": "ryla.render", "post": 7})

    assert seen == ["empty"]
    assert reader._get("cpu") == {"task": "ryla.render", "post": 7}
    with pytest.raises(Empty):
        reader._get("cpu")


def test_kombus_own_transport_hands_the_reader_an_empty_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Why the transport exists: kombu creates the file before writing it (the CI failure).
    with channel_pair(tmp_path, filesystem.Transport) as (writer, reader):
        mid_write(filesystem, monkeypatch, lambda: reader._get("cpu"))

        with pytest.raises(ValueError):  # json.JSONDecodeError, raised inside the reader's poll
            writer._put("cpu", {"task": "ryla.render"})


def test_one_message_goes_to_one_reader(channels: list[Any], tmp_path: Path) -> None:
    first, second = channels
    first._put("io", {"n": 1})

    assert first._get("io") == {"n": 1}
    with pytest.raises(Empty):
        second._get("io")
    assert list((tmp_path / "processed").iterdir()) == []  # taken, read, removed
    assert list((tmp_path / "queue").iterdir()) == []


def test_queues_are_kept_apart_and_read_oldest_first(channels: list[Any]) -> None:
    writer, reader = channels
    for n in range(3):
        writer._put("cpu", {"n": n})
    writer._put("gpu", {"n": "g"})

    assert reader._size("cpu") == 3 and reader._size("gpu") == 1
    assert [reader._get("cpu")["n"] for _ in range(3)] == [0, 1, 2]
    assert reader._get("gpu") == {"n": "g"}


def test_an_unreadable_message_is_dropped_and_said_not_raised(
    channels: list[Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer, reader = channels
    (tmp_path / "queue" / "00000000000000000000_broken.cpu.msg").write_bytes(
        b""
    )  # e.g. an older writer's
    writer._put("cpu", {"n": 1})

    with caplog.at_level(logging.ERROR, logger="tasks.file_broker"):
        assert reader._get("cpu") == {"n": 1}

    assert "dropped unreadable broker message 00000000000000000000_broken.cpu.msg" in caplog.text
    assert list((tmp_path / "queue").iterdir()) == []


def test_a_message_that_cannot_be_written_leaves_no_part_behind(
    channels: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, _ = channels

    def refuse(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_broker.os, "replace", refuse)
    with pytest.raises(Exception, match="cannot add message"):
        writer._put("cpu", {"n": 1})
    assert list((tmp_path / "queue").iterdir()) == []


def test_the_app_uses_it_without_a_server_and_not_with_redis(tmp_path: Path) -> None:
    server_less = create_app(get_settings(data_dir=tmp_path))
    redis = create_app(get_settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0"))

    with server_less.connection_for_write() as connection:
        assert connection.transport_cls == "tasks.file_broker:Transport"
        assert isinstance(connection.transport, file_broker.Transport)
    with redis.connection_for_write() as connection:
        assert connection.transport_cls == "redis"


def test_a_process_starting_while_another_binds_reads_a_whole_table(
    channels: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    binder, starter = channels
    seen = mid_write(file_broker, monkeypatch, lambda: starter.get_table("cpu"))

    binder._queue_bind("cpu", "cpu", None, "cpu")
    binder._queue_bind("cpu", "cpu", None, "cpu")  # again: nothing to write

    assert seen == [[]]  # not yet bound, but readable
    assert [tuple(row) for row in starter.get_table("cpu")] == [("cpu", "", "cpu")]


def test_kombus_own_bind_hands_a_starting_process_an_empty_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_lock, seen = filesystem.lock, []
    with channel_pair(tmp_path, filesystem.Transport) as (binder, starter):

        def starter_reads_first(file: Any, flags: int) -> None:
            # The binder has created the table file, not yet locked it: the other process runs.
            if not seen:
                seen.append("read")
                starter.get_table("cpu")
            real_lock(file, flags)

        monkeypatch.setattr(filesystem, "lock", starter_reads_first)
        with pytest.raises(ValueError):  # json: the table file was still empty
            binder._queue_bind("cpu", "cpu", None, "cpu")


def test_queues_bound_to_one_exchange_are_all_kept(channels: list[Any]) -> None:
    first, second = channels
    first._queue_bind("tasks", "cpu", None, "cpu")
    second._queue_bind("tasks", "io", None, "io")
    first._queue_bind("tasks", "cpu", None, "cpu")

    assert sorted(row.queue for row in second.get_table("tasks")) == ["cpu", "io"]


def test_removed_folders_are_made_again_instead_of_stalling_the_queue(
    channels: list[Any], tmp_path: Path
) -> None:
    writer, reader = channels
    (tmp_path / "queue").rmdir()  # e.g. someone tidying the data folder
    with pytest.raises(Empty):
        reader._get("cpu")
    writer._put("cpu", {"n": 1})
    (tmp_path / "processed").rmdir()

    assert reader._get("cpu") == {"n": 1}
