"""Logs that tell the story, as a log shipper reads them: with RYLA_LOG_FORMAT=json every line
of the beat and the workers is one JSON object, and the post's trip is in them."""

from __future__ import annotations

import json

import pytest

from models import PostStatus, utcnow
from pipeline.db import session_scope
from tests.conftest import add_influencer, add_post
from tests.integration.conftest import Backend, Processes
from tests.integration.test_chain import wait_for

pytestmark = pytest.mark.integration
CELERY_SAYS = "worker: Warm shutdown (MainProcess)"  # printed by Celery itself, not logged


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_beat_and_workers_log_json_lines_that_tell_the_posts_trip(
    backend: Backend, processes: Processes
) -> None:
    backend.env["RYLA_LOG_FORMAT"] = "json"
    with session_scope(backend.factory) as s:
        add_influencer(s)
        post_id = add_post(s, at=utcnow())
    processes.worker("gpu", concurrency=1)
    processes.worker("cpu,io")
    processes.start("beat")
    wait_for(backend, processes, [post_id], {PostStatus.PUBLISHED})
    processes.stop()
    lines = [line for line in processes.full_logs().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines if line != CELERY_SAYS]
    assert [e for e in entries if e["message"].startswith("generator: preview")]  # start-up too
    steps = {e["step"]: e for e in entries if e.get("post_id") == post_id and "step" in e}
    assert set(steps) == {"generate", "render", "publish"}
    assert all(e["influencer"] == "mia" and e["outcome"] == "ok" for e in steps.values())
    assert all(e["seconds"] >= 0 and e["ts"].endswith("+00:00") for e in steps.values())
    ticks = [e["message"] for e in entries if e["message"].startswith("tick: ")]
    assert any("claimed 1 (generate 1)" in t for t in ticks), ticks
