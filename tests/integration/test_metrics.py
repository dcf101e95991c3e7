"""The metrics endpoint after a real run: a post's trip through real workers shows in the counts
and histograms a Prometheus scrape of ``ryla serve`` returns, on both backends."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models import PostStatus, utcnow
from pipeline.db import session_scope
from tests.conftest import add_influencer, add_post
from tests.integration.conftest import Backend, Processes
from tests.integration.test_chain import wait_for
from tests.integration.test_publish_instagram import free_port

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def labelled(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_a_scrape_after_a_real_run_shows_the_posts_trip(
    backend: Backend, processes: Processes
) -> None:
    backend.env["RYLA_HEARTBEAT_SECONDS"] = "1"
    port = free_port()
    with session_scope(backend.factory) as s:
        add_influencer(s)
        post_id = add_post(s, at=utcnow())
    processes.start("serve", "--port", str(port), ready="serving media")
    processes.worker("gpu", concurrency=1)
    processes.worker("cpu,io")
    processes.start("beat")
    wait_for(backend, processes, [post_id], {PostStatus.PUBLISHED})
    time.sleep(1.5)  # one more heartbeat from every process
    got = scrape(f"http://127.0.0.1:{port}/metrics")
    assert labelled(got, "ryla_posts", influencer="mia", state="published") == 1
    for step in ("generate", "render", "publish"):
        assert labelled(got, "ryla_step_seconds_count", step=step, outcome="ok") == 1
        assert labelled(got, "ryla_step_seconds_sum", step=step, outcome="ok") > 0
        assert (
            labelled(got, "ryla_step_outcomes_total", step=step, outcome="ok", error_class="") == 1
        )
    assert labelled(got, "ryla_image_generation_seconds_count", generator="preview") == 1
    assert labelled(got, "ryla_publish_lateness_seconds_count") == 1
    assert labelled(got, "ryla_publish_lateness_seconds_bucket", le="+Inf") == 1
    assert labelled(got, "ryla_images_generated_total") == 1
    assert labelled(got, "ryla_gpu_seconds_total") > 0
    for queue in ("gpu", "cpu", "io"):
        assert labelled(got, "ryla_queue_depth", queue=queue) >= 0
    assert labelled(got, "ryla_broker_up") == 1 and labelled(got, "ryla_database_up") == 1
    up = {dict(k[1])["name"].split("@")[0]: v for k, v in got.items() if k[0] == "ryla_worker_up"}
    assert up == {"gpu": 1, "cpu-io": 1, "beat": 1}
