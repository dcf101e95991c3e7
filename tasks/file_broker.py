"""The server-less broker: kombu's filesystem transport, with each message written whole.

kombu's own ``_put`` creates the message file under its final name and then writes into it, so a
consumer polling the folder can take the file while it is still empty; ``json.loads`` then
raises and the worker's consumer loop dies (seen in CI: the worker stopped taking tasks). Here a
message is written under a name no consumer looks at and renamed into the queue, which is
atomic on one filesystem: a consumer sees the whole message or nothing. Taking a message is a
rename too, into the processed folder beside the queue (kombu moves it to the temp folder,
possibly another filesystem, where ``shutil.move`` copies and two consumers can both read it).
A message file that still cannot be read is logged and dropped, never allowed to stop the
consumer: the beat re-sends any claim that no worker started.

Binding a queue has the same flaw in kombu: the first process creates the exchange's table file
and then writes it, so a second process starting at the same moment (``ryla demo`` and ``ryla
run`` start several) can read it empty. Here binders take turns on a lock file and replace the
table whole.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import suppress
from queue import Empty
from time import monotonic_ns
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

__all__ = ["Channel", "Transport"]

log = logging.getLogger(__name__)

_PART = ".part"  # a message being written; its name never ends in ".<queue>.msg"


def _name(queue: str) -> str:
    # kombu's layout, so its other readers (size, purge) still count the message:
    # <time>_<uuid>.<queue>.msg; nanoseconds, zero-padded, so sorting keeps the order of sends.
    return f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"


def _write_whole(path: str, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it there: readers see all of it or none."""
    writing = path + _PART
    try:
        with open(writing, "wb") as stream:
            stream.write(str_to_bytes(text))
        os.replace(writing, path)
    except OSError:
        with suppress(OSError):
            os.remove(writing)
        raise


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear whole and are taken by exactly one reader."""

    # kombu names the second argument "message" in one base and "payload" in the other.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = _name(queue)
        try:
            os.makedirs(self.data_folder_out, exist_ok=True)
            _write_whole(os.path.join(self.data_folder_out, name), dumps(payload))
        except OSError as exc:
            raise ChannelError(f"cannot add message {name!r} to the queue") from exc

    def _queue_bind(self, exchange: Any, routing_key: Any, pattern: Any, queue: Any) -> None:
        table_file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with open(f"{table_file}.lock", "wb") as turn:
            filesystem.lock(turn, filesystem.LOCK_EX)
            try:
                table = self.get_table(exchange)
                if entry not in table:
                    _write_whole(str(table_file), dumps([entry, *table]))
            finally:
                filesystem.unlock(turn)

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        # Folders someone removed are made again: without the processed one every take would
        # fail like a lost race, and the queue would stall unseen.
        for folder in (self.data_folder_in, self.processed_folder):
            os.makedirs(folder, exist_ok=True)
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            taken = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), taken)
            except OSError:  # another consumer took it first
                continue
            try:
                with open(taken, "rb") as stream:
                    return loads(bytes_to_str(stream.read()))
            except (OSError, ValueError) as exc:
                log.error("dropped unreadable broker message %s: %s", name, exc)
            finally:
                if not self.store_processed:
                    with suppress(OSError):
                        os.remove(taken)
        raise Empty()


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel
