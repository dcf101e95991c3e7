"""Where Prometheus' multi-process files live: ``<data dir>/metrics/<host>-<pid>/``, one folder
per process tree (a worker and its prefork children, or a beat).

prometheus-client picks multi-process mode when it is imported, from PROMETHEUS_MULTIPROC_DIR:
``use_metrics_dir`` must run before anything imports it. A tree's folder is emptied when it
starts; folders of dead trees on this host are removed. The scraper merges every folder, so
workers in other containers that share the data volume are counted too.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

__all__ = ["ENV", "metrics_files", "use_metrics_dir"]

ENV = "PROMETHEUS_MULTIPROC_DIR"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune_dead(root: Path, host: str, keep: Path) -> None:
    for folder in root.glob(f"{host}-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if folder != keep and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def use_metrics_dir(root: Path, *, host: str | None = None, pid: int | None = None) -> Path:
    """Empty this process tree's folder and point prometheus-client at it (call it first)."""
    if "prometheus_client" in sys.modules and os.environ.get(ENV) is None:
        # Too late for multi-process mode: this process would count in memory only.
        raise RuntimeError("prometheus_client was imported before the metrics folder was set")
    host = host or socket.gethostname()
    folder = root / f"{host}-{pid or os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    _prune_dead(root, host, folder)
    os.environ[ENV] = str(folder)
    return folder


def metrics_files(root: Path) -> list[Path]:
    """Every process's value files, across every tree's folder."""
    return sorted(root.glob("*/*.db")) if root.is_dir() else []
