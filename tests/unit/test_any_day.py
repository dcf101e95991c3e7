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
ZIMAGE_MODULES = ("test_zimage", "test_zimage_compile", "test_zimage_modes", "test_zimage_captions")


@pytest.mark.timeout(960)  # the child's own limit (900 s) decides, with a word on what ran
@pytest.mark.parametrize("days", [366])
def test_the_unit_suite_passes_with_the_clock_a_year_ahead(days: int) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider",
            f"--days-ahead={days}", "--deselect", "tests/unit/test_any_day.py",
            # Two processes: beside the suite's own workers it still ends in minutes.
            "-n", "2",
            # Tensor code with fixed seeds reads no dates, and compiling it is over half of
            # the unit suite's time (it runs once, in the suite itself).
            *(f"--ignore=tests/unit/{name}.py" for name in ZIMAGE_MODULES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
