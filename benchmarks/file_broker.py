"""The server-less broker under load: writer and reader processes on one queue folder, kombu's
filesystem transport against ours (``tasks.file_broker``). Counts what the readers got, how many
distinct messages, and how many reads failed (a half-written file). Prints a table and writes
JSON under ``benchmarks/results/``.

    python benchmarks/file_broker.py                # 2 writers x 400 messages of 400 kB
    python benchmarks/file_broker.py --size 2000 --messages 3000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from kombu import Connection
from kombu.transport import filesystem

from tasks import file_broker

RESULTS = Path(__file__).resolve().parent / "results"
TRANSPORTS = {"kombu filesystem": filesystem.Transport, "tasks.file_broker": file_broker.Transport}
IDLE_POLLS = 200  # a reader stops after this many empty polls 5 ms apart (1 s of quiet)


def channel(folder: Path, transport: Any) -> Any:
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
    }
    return Connection(transport=transport, transport_options=options).default_channel


def write(folder: Path, transport: Any, writer: int, messages: int, size: int) -> None:
    sending = channel(folder, transport)
    for n in range(messages):
        sending._put("cpu", {"writer": writer, "n": n, "body": "x" * size})


def read(folder: Path, transport: Any, results: Any) -> None:
    taking, got, failed, idle = channel(folder, transport), [], 0, 0
    while idle < IDLE_POLLS:
        try:
            message = taking._get("cpu")
        except Empty:
            idle += 1
            time.sleep(0.005)
            continue
        except ValueError:  # a file read before its writer had written it
            failed += 1
            continue
        got.append((message["writer"], message["n"]))
        idle = 0
    results.put((got, failed))


def run(name: str, transport: Any, args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="ryla-broker-"))
    for sub in ("queue", "processed"):
        (folder / sub).mkdir()
    results: Any = multiprocessing.Queue()
    readers = [
        multiprocessing.Process(target=read, args=(folder, transport, results))
        for _ in range(args.readers)
    ]
    writers = [
        multiprocessing.Process(target=write, args=(folder, transport, w, args.messages, args.size))
        for w in range(args.writers)
    ]
    started = time.perf_counter()
    for process in readers + writers:
        process.start()
    for process in writers:
        process.join()
    collected = [results.get() for _ in readers]
    for process in readers:
        process.join()
    got = [message for messages, _ in collected for message in messages]
    return {
        "transport": name,
        "sent": args.writers * args.messages,
        "received": len(got),
        "distinct": len(set(got)),
        "failed_reads": sum(failed for _, failed in collected),
        "seconds": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=400, help="per writer")
    parser.add_argument("--size", type=int, default=400_000, help="bytes of body per message")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = [run(name, transport, args) for name, transport in TRANSPORTS.items()]
    print(
        f"\n{args.writers} writers x {args.messages} messages of {args.size} B, "
        f"{args.readers} readers"
    )
    print(f"{'transport':<20} {'sent':>6} {'received':>9} {'distinct':>9} {'failed':>7} {'s':>6}")
    for row in rows:
        print(
            f"{row['transport']:<20} {row['sent']:>6} {row['received']:>9} {row['distinct']:>9} "
            f"{row['failed_reads']:>7} {row['seconds']:>6}"
        )
    path = args.out_dir / "file_broker.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"settings": vars(args) | {"out_dir": None}, "rows": rows}, indent=2) + "\n"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
