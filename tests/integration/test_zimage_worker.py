"""The GPU task path through a real worker: Z-Image loaded once at start, batched, recorded.

Runs the real ``zimage`` backend on tiny random weights saved to a folder (CPU, float32).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from models import Asset, AssetKind, PostStatus, utcnow
from pipeline.db import session_scope
from tests.conftest import add_influencer, add_post
from tests.integration.conftest import Backend, Processes
from tests.integration.test_chain import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.generators.zimage_random import build_random_pipeline

    folder = tmp_path_factory.mktemp("tiny-zimage")
    build_random_pipeline("tiny").save_pretrained(folder)
    return folder


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_gpu_worker_generates_due_posts_with_zimage(
    backend: Backend, processes: Processes, tiny_weights: Path
) -> None:
    backend.env |= {
        "RYLA_GENERATOR": "zimage",
        "RYLA_ZIMAGE_PATH": str(tiny_weights),
        "RYLA_ZIMAGE_ALLOW_CPU": "true",
        "RYLA_GPU_COST_PER_HOUR": "3.6",
    }
    with session_scope(backend.factory) as s:
        add_influencer(s)
        ids = [add_post(s, at=utcnow(), formats=["feed_square"]) for _ in range(3)]
    # The pipeline loads once, in the pool's child, as the worker starts: before any task.
    processes.start("worker", "--queues", "gpu", "--name", "gpu", ready="zimage: ready in")
    processes.worker("cpu,io")
    processes.start("beat")
    wait_for(backend, processes, ids, {PostStatus.PUBLISHED}, timeout=180)
    with backend.factory() as s:
        metas = s.scalars(select(Asset.meta).where(Asset.kind == AssetKind.RAW)).all()
    assert len(metas) == 3
    for meta in metas:
        assert (meta["generator"], meta["steps"], meta["guidance"]) == ("zimage", 8, 0.0)
        assert (meta["width"], meta["height"]) == (1024, 1024)
        assert meta["cost"] is not None and meta["duration_s"] > 0
    assert max(meta["batch_size"] for meta in metas) > 1  # claimed together, generated together
    # Ready (with its mode and warm-up) before the first image, never after.
    log = processes.full_logs()
    ready = log.index("zimage: ready in")
    assert ready < log.index(" image(s) 1024x1024 in ")
    assert "memory mode cpu" in log[ready:] and "not compiled (no CUDA" in log[ready:]
