"""The alternating benchmark keeps working: two workers apply their slices and report CPU.

Only that the figures are there and positive, never what they are: a test does not judge time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.benchmarks.alternate import compare

PROJECT = Path(__file__).resolve().parent.parent


def test_both_checkouts_report_cpu_for_every_slice() -> None:
    result = compare([PROJECT, PROJECT], "sqlite", "answers", slices=2, size=2)
    for values in result["ms_per_update"].values():
        assert len(values) == 2
        assert all(value > 0 for value in values)
    assert result["median_ratio"] > 0


def test_a_folder_that_is_no_checkout_is_refused_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.alternate", "--checkouts", str(tmp_path), "."],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "not a checkout of borgerdialog" in run.stderr
    assert "Traceback" not in run.stderr
