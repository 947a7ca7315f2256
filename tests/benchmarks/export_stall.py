"""How long a large export holds the event loop (and with it every chat the process answers).

Run: ``.venv/bin/python -m tests.benchmarks.export_stall [--votes 300000] [--people 5000]``

It imports a made-up Pol.is conversation (10 statements; every vote "agree") into a fresh
SQLite database, then exports it as the dashboard does: the Pol.is files, then the answers'
spreadsheet (reading the answers and votes, then writing the workbook). Beside each step a
task asks for a 10 ms sleep over and over; the longest wait between two of its turns is what a
citizen's message would wait at worst. Times vary with the machine: compare runs made one after
the other (``--checkout`` of an older tree for a baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SLUG = "stor-samtale"
STATEMENTS = 10
COMMENT_HEADER = "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
VOTE_HEADER = "timestamp,datetime,comment-id,voter-id,vote\n"


def write_conversation(folder: Path, votes: int, people: int) -> None:
    """A Pol.is folder: STATEMENTS statements, ``votes`` votes spread over ``people`` voters."""
    folder.mkdir(parents=True, exist_ok=True)
    start = 1_700_000_000_000
    (folder / "comments.csv").write_text(
        COMMENT_HEADER
        + "".join(
            f"{start + n},x,{n},,0,0,1,Udsagn nummer {n} om den nye plan for byen\n"
            for n in range(1, STATEMENTS + 1)
        ),
        encoding="utf-8",
    )
    (folder / "votes.csv").write_text(
        VOTE_HEADER
        + "".join(
            f"{start + 1000 + i},x,{1 + i % STATEMENTS},{i % people},1\n" for i in range(votes)
        ),
        encoding="utf-8",
    )


async def longest_stall(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(seconds the work took, the longest wait of a 10 ms ticker meanwhile)."""
    longest = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done.set()
    await task
    return took, longest


async def measure(database: Path, folder: Path) -> dict[str, tuple[float, float]]:
    from bot.consultations.export import RENDERERS, build_table
    from bot.consultations.polis import export_polis, import_polis, read_folder
    from storage.database import create_engine, create_session_factory
    from storage.migrate import upgrade
    from storage.uow import UnitOfWorkFactory

    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await upgrade(engine)
    uow = UnitOfWorkFactory(create_session_factory(engine))
    async with uow() as unit:
        await import_polis(unit, read_folder(folder), SLUG, datetime.now(UTC))
        await unit.commit()
    results: dict[str, tuple[float, float]] = {}

    async def polis() -> None:
        async with uow.read() as unit:
            consultation = await unit.consultations.by_slug(SLUG)
            assert consultation is not None
            await export_polis(unit, consultation, "https://example.org")

    tables = []

    async def spreadsheet() -> None:
        async with uow.read() as unit:
            tables.append(await build_table(unit, SLUG))

    async def workbook() -> None:
        RENDERERS["xlsx"](tables[0], ZoneInfo("Europe/Copenhagen"), ";")

    results["polis"] = await longest_stall(polis)
    results["xlsx-read"] = await longest_stall(spreadsheet)
    # Writing the workbook is plain work: on the event loop it holds it all along (as the
    # dashboard did before 2026-12-02); the dashboard now does it in a thread.
    results["xlsx-write"] = await longest_stall(workbook)
    await engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=300_000)
    parser.add_argument("--people", type=int, default=5_000)
    parser.add_argument(
        "--checkout",
        type=Path,
        help="also measure this tree (e.g. a git worktree of an older commit)",
    )
    arguments = parser.parse_args()
    if arguments.votes < 1 or arguments.people < 1:
        parser.error("--votes and --people must be at least 1")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "conversation"
        write_conversation(folder, arguments.votes, arguments.people)
        trees = [Path.cwd()] + ([arguments.checkout] if arguments.checkout else [])
        for tree in trees:
            # Each tree in its own process, imported from that tree.
            database = Path(scratch) / f"{len(list(Path(scratch).glob('*.sqlite3')))}.sqlite3"
            # This file's measure() run with the tree's own code first on the path (an older
            # tree need not have this file).
            code = (
                "import asyncio, json, runpy, sys; from pathlib import Path; "
                "sys.path.insert(0, '.'); "
                f"measure = runpy.run_path({__file__!r})['measure']; "
                f"print(json.dumps(asyncio.run(measure(Path({str(database)!r}), "
                f"Path({str(folder)!r})))))"
            )
            run = subprocess.run(
                [sys.executable, "-c", code], cwd=tree, capture_output=True, text=True
            )
            if run.returncode != 0:
                sys.exit(f"export_stall: {tree}: {run.stderr.strip().splitlines()[-1]}")
            figures = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{tree} ({arguments.votes:,} votes, {arguments.people:,} people):")
            for name, (took, stall) in figures.items():
                print(f"  {name:10} {took:6.2f} s; longest wait of the event loop {stall:6.2f} s")


if __name__ == "__main__":
    main()
