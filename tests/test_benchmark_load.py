"""The load benchmark keeps working: its quick run finishes and reports every part's figures.

Only that the figures are there and positive: a test never judges a time or a ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
# Each part's figures in the JSON, as the quick run on SQLite writes them.
PARTS = ("bare", "borgerdialog_sqlite", "walkers_sqlite", "scale_sqlite", "broadcast_sqlite")


def numbers(figures: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Every figure in a part, nested ones by their path (scale.few.rss_started_mb)."""
    found: dict[str, Any] = {}
    for name, value in figures.items():
        if isinstance(value, dict):
            found.update(numbers(value, f"{where}{name}."))
        else:
            found[f"{where}{name}"] = value
    return found


def test_the_quick_load_benchmark_reports_every_part(tmp_path: Path) -> None:
    output = tmp_path / "load.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.load",
            "--quick",
            "--databases",
            "sqlite",
            "--json",
            str(output),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(output.read_text())
    for part in PARTS:
        assert part in results, f"no {part} in {sorted(results)}"
        figures = numbers(results[part])
        assert figures, f"{part} has no figures"
        for name, value in figures.items():
            assert isinstance(value, int | float), f"{part}.{name} is {value!r}"
            assert value > 0, f"{part}.{name} is {value}"
