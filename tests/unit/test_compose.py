"""The production compose file: every long-running service comes back by itself, and every
service another waits for, or Prometheus scrapes, exists."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
ONE_SHOTS = {"migrate", "model-download"}  # they finish; the services after them wait on them


def test_every_long_running_service_is_restarted_and_only_one_shots_are_not() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    policies = {name: str(service.get("restart", "no")) for name, service in services.items()}
    assert {name for name, policy in policies.items() if policy == "no"} == ONE_SHOTS
    assert {policies[name] for name in services.keys() - ONE_SHOTS} <= {"unless-stopped", "always"}


def test_every_service_waited_for_or_scraped_exists() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    waited = {
        (name, needed)
        for name, service in services.items()
        for needed in service.get("depends_on", [])
    }
    assert {(name, needed) for name, needed in waited if needed not in services} == set()
    scrape = yaml.safe_load((COMPOSE.parent / "monitoring" / "prometheus.yml").read_text())
    targets = [
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    ]
    assert targets and {t.split(":")[0] for t in targets} <= services.keys()
