"""The suite passes on any day: the unit tests again, with the wall clock a year ahead.

Everything that reads the time takes ``now=`` or a clock from its caller; a test that fixes a
date injects it. This runs the unit suite in a child run (two processes) under ``--days-ahead``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(960)  # the child's own limit (900 s) decides, with a word on what ran
@pytest.mark.parametrize("days", [366])
def test_the_unit_suite_passes_with_the_clock_a_year_ahead(days: int) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider",
            f"--days-ahead={days}", "--deselect", "tests/unit/test_any_day.py",
            # Two processes: beside the suite's own workers it still ends in minutes.
            "-n", "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
