"""The export benchmark keeps working: a tiny run reports each step (never judged by its times)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_the_export_benchmark_reports_each_step() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.export_stall", "--votes", "300", "--people", "30"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(300 votes, 30 people):" in run.stdout
    for step in ("polis", "xlsx-read", "xlsx-write"):
        found = re.search(
            rf"^  {step} +([\d.]+) s; longest wait of the event loop +([\d.]+) s$", run.stdout, re.M
        )
        assert found, run.stdout


def test_the_export_benchmark_refuses_sizes_below_one() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.export_stall", "--votes", "0"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "--votes and --people must be at least 1" in run.stderr
