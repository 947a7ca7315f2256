"""The load benchmark keeps working: a quick run finishes and reports every part's figures.

Only that the figures are there and positive: a test never judges a time or a ratio. The run is
smaller than ``--quick`` alone (a few citizens, a short round trip): each part still starts its
bots, drives them and reports, and the test spends its time on that rather than on the sizes.
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
# Smaller than --quick where a part's time goes to its size: walkers' percentiles from 3 x 14
# steps; 30 of the 300 participants halfway through; a post to 100 subscribers still going out
# (29 a second) while walkers walk. The burst keeps --quick's 50 citizens: the bare bot's CPU is
# read in clock ticks (10 ms), and 10 citizens could use less than one.
SIZES = (
    *("--latency", "0.005", "--walkers", "3"),
    *("--participants", "300", "--subscribers", "100"),
)


def numbers(figures: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Every figure in a part, nested ones by their path (scale.few.rss_started_mb)."""
    found: dict[str, Any] = {}
    for name, value in figures.items():
        if isinstance(value, dict):
            found.update(numbers(value, f"{where}{name}."))
        else:
            found[f"{where}{name}"] = value
    return found


def quick_run(
    tmp_path: Path, *arguments: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run the benchmark at the sizes above; return the run and its JSON results."""
    output = tmp_path / "load.json"
    command = [sys.executable, "-m", "tests.benchmarks.load", "--quick", *SIZES, *arguments]
    run = subprocess.run(
        [*command, "--json", str(output)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run, json.loads(output.read_text())


def test_the_quick_load_benchmark_reports_every_part_and_its_statement_counts(
    tmp_path: Path,
) -> None:
    """Every part reports positive figures. With --count-statements the bot under test counts
    its SQL statements and flushes, and the burst and the walkers report them per update, with
    the statements themselves listed. The walkers read each question for a moment first
    (--reading), as citizens do. (One run for both: each run starts a dozen processes.)"""
    counts = tmp_path / "counts"
    run, results = quick_run(
        tmp_path,
        *("--databases", "sqlite", "--reading", "0.05", "--count-statements", str(counts)),
    )
    for part in PARTS:
        assert part in results, f"no {part} in {sorted(results)}"
        figures = numbers(results[part])
        assert figures, f"{part} has no figures"
        for name, value in figures.items():
            assert isinstance(value, int | float), f"{part}.{name} is {value!r}"
            assert value > 0, f"{part}.{name} is {value}"
    assert results["walkers_sqlite"]["reading_seconds"] == 0.05
    assert "reading each question 0.05 s on average" in run.stdout
    for part in ("borgerdialog_sqlite", "walkers_sqlite"):
        # Every update stores its event, applies it and marks it done: three statements at least.
        assert results[part]["statements_per_update"] >= 3, results[part]
        assert results[part]["flushes_per_update"] > 0, results[part]
    listed = (counts / "sqlite-walkers.tsv").read_text()
    assert "INSERT INTO inbox_events" in listed
    assert "UPDATE inbox_events" in listed
    assert "\tflush " in listed
    assert "statements and" in run.stdout
