"""Expansion cost against a rule's age: an hourly RRULE started a day, a year and five years
ago, planned 14 days ahead, counting from its anchor (as the beat does) and from its start.

Run ``python benchmarks/expansion_age.py`` (no services: an in-memory SQLite); prints a table,
writes ``benchmarks/results/expansion_age.json``. Times are medians of the slot computation
(rules -> post rows, no database), which is what used to grow with the start's age.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from models import Base, ContentCalendar, Influencer
from pipeline.planning.calendars import add_rule
from pipeline.planning.expand import slot_rows
from pipeline.planning.influencers import (
    CharacterIn,
    InfluencerIn,
    create_character,
    create_influencer,
)
from pipeline.planning.rules import CalendarSettingsIn, RuleIn
from pipeline.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "expansion_age.json"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AGES_DAYS = (1, 365, 5 * 365)
REPEATS = 15
HORIZON = timedelta(days=14)


def _calendar(session: Session, age_days: int) -> tuple[ContentCalendar, Influencer]:
    handle = f"age{age_days}"
    influencer = create_influencer(
        session=session,
        data=InfluencerIn(handle=handle, display_name=handle, timezone="Europe/Berlin"),
    )
    create_character(session=session, handle=handle, data=CharacterIn(name="Face"))
    start = (NOW - timedelta(days=age_days)).date().isoformat()
    calendar, _ = add_rule(
        session=session,
        handle=handle,
        calendar_name="hourly",
        rule=RuleIn(rrule="FREQ=HOURLY;BYMINUTE=0", start=start, scenes=["travel", "workout"]),
        settings_in=CalendarSettingsIn(),
        character=None,
        settings=Settings.model_construct(max_posts_per_day=25),
        now=NOW,
    )
    return calendar, influencer


def _median_ms(calendar: ContentCalendar, influencer: Influencer, *, anchored: bool) -> float:
    rule = calendar.rules[0]
    saved = (rule.anchor_at, rule.anchor_n)
    if not anchored:
        rule.anchor_at, rule.anchor_n = None, None
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        rows = slot_rows(calendar, influencer, [rule], start=NOW, end=NOW + HORIZON)
        timings.append((time.perf_counter() - started) * 1000)
        assert len(rows) == 14 * 24
    rule.anchor_at, rule.anchor_n = saved
    return statistics.median(timings)


def main() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    results: list[dict[str, Any]] = []
    with Session(engine) as session:
        for age in AGES_DAYS:
            calendar, influencer = _calendar(session, age)
            results.append(
                {
                    "rule_age_days": age,
                    "anchored_ms": round(_median_ms(calendar, influencer, anchored=True), 2),
                    "from_start_ms": round(_median_ms(calendar, influencer, anchored=False), 2),
                }
            )
    print(f"{'rule age':>10} {'from anchor (ms)':>18} {'from start (ms)':>16}")
    for row in results:
        print(f"{row['rule_age_days']:>8} d {row['anchored_ms']:>18} {row['from_start_ms']:>16}")
    RESULTS.write_text(
        json.dumps(
            {
                "what": "hourly RRULE, 14 days (336 slots) of post rows, median of "
                f"{REPEATS} runs, slot computation only",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
