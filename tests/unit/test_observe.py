"""What the pipeline says about itself: step records (logged, counted), the beat's story of a
tick, JSON or text logs with zoned times, heartbeats, and the metrics a scrape returns."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from admin.studio.app import create_app
from models import PostStatus, WorkerHeartbeat
from pipeline.errors import PermanentPublishError
from pipeline.observe.logs import JsonFormatter, TextFormatter
from pipeline.observe.metrics_dir import use_metrics_dir
from pipeline.observe.steps import StepEnded, add_listener, remove_listener
from pipeline.settings import Settings
from pipeline.steps.claims import Dispatch
from pipeline.steps.moves import Step
from pipeline.steps.tick import TickReport
from tasks.beat_chores import describe_tick
from tasks.heartbeat import Heartbeat
from tasks.metrics import metrics_registry, render_metrics
from tests.unit.test_runner import RecordingPublisher, drain, first_tick, make_runtime, new_post

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ended() -> Iterator[list[StepEnded]]:
    seen: list[StepEnded] = []
    add_listener(seen.append)
    yield seen
    remove_listener(seen.append)


def test_each_step_is_recorded_with_post_influencer_duration_and_outcome(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int, ended: list[StepEnded],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    post_id = new_post(factory)
    with caplog.at_level(logging.INFO, logger="pipeline.steps"):
        drain(make_runtime(settings, factory), first_tick(settings, factory))
    assert [(e.step, e.outcome, e.to) for e in ended] == [
        ("generate", "ok", "generated"),
        ("render", "ok", "ready"),
        ("publish", "ok", "published"),
    ]
    generate, _, publish = ended
    assert generate.post_id == post_id and generate.influencer == "mia"
    assert generate.generator == "preview" and len(generate.image_seconds) == 1
    assert publish.lateness_seconds == 0.0  # the test clock publishes right on time
    logged = [r for r in caplog.records if r.name == "pipeline.steps"]
    assert f"post {post_id} @mia: publish ok in" in logged[-1].getMessage()
    assert logged[-1].post_id == post_id and logged[-1].outcome == "ok"  # type: ignore[attr-defined]


def test_a_failed_step_is_recorded_with_its_error_class(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int, ended: list[StepEnded]
) -> None:
    new_post(factory)
    refusal = PermanentPublishError("the caption is too long")
    runtime = make_runtime(settings, factory, publisher=RecordingPublisher(fail_with=refusal))
    drain(runtime, first_tick(settings, factory))
    assert (ended[-1].step, ended[-1].outcome, ended[-1].error_class) == (
        "publish",
        "failed",
        "PermanentPublishError",
    )


def test_the_beat_tells_what_a_tick_did_and_stays_quiet_when_it_did_nothing() -> None:
    assert describe_tick(TickReport()) is None
    report = TickReport(
        planned=42,
        missed=2,
        dispatches=[
            Dispatch(Step.GENERATE, 1, "t"),
            Dispatch(Step.GENERATE, 2, "t"),
            Dispatch(Step.PUBLISH, 3, "u"),
        ],
    )
    assert describe_tick(report) == "planned 42; claimed 3 (generate 2, publish 1); marked 2 missed"


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("pipeline.steps", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_json_logs_are_one_object_per_line_with_the_step_fields() -> None:
    line = JsonFormatter().format(
        _record("post 7 @mia: render ok", post_id=7, influencer="mia", seconds=0.5)
    )
    entry = json.loads(line)
    assert entry["message"] == "post 7 @mia: render ok" and entry["post_id"] == 7
    assert entry["influencer"] == "mia" and entry["ts"].endswith("+00:00")


def test_text_logs_label_the_time_with_its_offset() -> None:
    line = TextFormatter().format(_record("hello"))
    stamp = line.split(" INFO ")[0]
    assert stamp[-6] in "+-" and stamp[-3] == ":", stamp  # e.g. 2026-11-30 19:56:01.123+01:00


def test_a_heartbeat_writes_its_state_and_says_when_it_stopped(
    settings: Settings, factory: sessionmaker[Session]
) -> None:
    heartbeat = Heartbeat(settings, name="cpu@box", role="worker", queues="cpu")
    heartbeat.state = "ready"
    heartbeat.beat()  # what its thread does every RYLA_HEARTBEAT_SECONDS
    with factory() as s:
        assert s.scalar(select(WorkerHeartbeat.state)) == "ready"
    heartbeat.stop()
    with factory() as s:
        row = s.scalars(select(WorkerHeartbeat)).one()
    assert (row.name, row.queues, row.state) == ("cpu@box", "cpu", "stopped")
    assert row.stopped_at is not None


def test_a_metrics_folder_starts_empty_and_dead_trees_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "set-by-an-earlier-start")
    dead = tmp_path / "box-999999999"
    other_host = tmp_path / "elsewhere-1"
    mine = tmp_path / "box-42"
    for folder in (dead, other_host, mine):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"old")
    assert use_metrics_dir(tmp_path, host="box", pid=42) == mine
    assert list(mine.iterdir()) == [] and not dead.exists() and other_host.exists()


WORKER = """
import sys
from pathlib import Path
from pipeline.observe.metrics_dir import use_metrics_dir
use_metrics_dir(Path(sys.argv[1]))
from pipeline.observe.steps import StepEnded
from tasks.metrics import _record, install_step_metrics
install_step_metrics()
_record(StepEnded("generate", 1, "mia", 2.5, "ok", "generated", image_seconds=(2.4,),
                  generator="zimage"))
_record(StepEnded("publish", 1, "mia", 0.3, "ok", "published", lateness_seconds=4.0))
_record(StepEnded("publish", 2, "mia", 0.2, "retry", "ready", error_class="Throttled"))
"""


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_scrape_merges_the_workers_files_with_the_database_and_the_broker(
    settings: Settings, factory: sessionmaker[Session], influencer_id: int
) -> None:
    new_post(factory)
    subprocess.run(
        [sys.executable, "-c", WORKER, str(settings.metrics_dir)], cwd=ROOT, check=True, timeout=60
    )
    data, content_type = render_metrics(metrics_registry(settings))
    got = scrape(data.decode())
    assert content_type.startswith("text/plain")
    assert got[("ryla_posts", (("influencer", "mia"), ("state", PostStatus.PLANNED.value)))] == 1
    assert got[("ryla_step_seconds_count", (("outcome", "ok"), ("step", "generate")))] == 1
    assert got[("ryla_step_seconds_sum", (("outcome", "ok"), ("step", "generate")))] == 2.5
    assert (
        got[
            (
                "ryla_step_outcomes_total",
                (("error_class", "Throttled"), ("outcome", "retry"), ("step", "publish")),
            )
        ]
        == 1
    )
    assert got[("ryla_image_generation_seconds_sum", (("generator", "zimage"),))] == 2.4
    assert got[("ryla_publish_lateness_seconds_bucket", (("le", "5.0"),))] == 1
    assert got[("ryla_queue_depth", (("queue", "gpu"),))] == 0
    assert got[("ryla_broker_up", ())] == 1 and got[("ryla_database_up", ())] == 1
    assert got[("ryla_images_generated_total", ())] == 0


def test_metrics_need_the_bearer_token_when_one_is_set(
    settings: Settings, factory: sessionmaker[Session]
) -> None:
    guarded = settings.model_copy(update={"metrics_token": "t" * 32})
    with TestClient(create_app(guarded, send=lambda _: None)) as client:
        refused = client.get("/metrics")
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {'t' * 32}"})
    assert refused.status_code == 401
    assert allowed.status_code == 200 and "ryla_database_up 1.0" in allowed.text
