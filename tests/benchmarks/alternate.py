"""Benchmark: the dialogue core's CPU per update in two checkouts, in slices taken in turn.

On a shared machine the CPU time of the same work drifts by a third and more within minutes, so
two versions measured one after the other mostly compare two moments. Here each checkout runs in
a process of its own that lives through the whole run: the dialogue core as the flow tests build
it (``tests/flows.py``: no HTTP, a recording channel), on its own database, with the example
consultation open. The driver has them apply updates in slices taken in turn (A then B, then B
then A, ...), so both see the same drift, and compares the slices pair by pair.

Run: ``.venv/bin/python -m tests.benchmarks.alternate --checkouts /tmp/before . --database
postgresql`` (``git worktree add /tmp/before <commit>`` for an older version). ``--kind
newcomers`` is the burst's update (``/start friluftsliv`` from a citizen the bot has never seen;
answered with the introduction and the consent card); ``--kind consent`` adds the citizen's tap
on the consent button (two updates a citizen, the first question asked), ``--kind answers`` the
answers to the first two questions too (four updates a citizen). On PostgreSQL the core
takes each chat's turn and its delivery across processes, as ``borgerdialog run`` does there.
Only the core's own process is measured: the database server's CPU is not in it.

``--worker`` is the process of one checkout (started by the driver): it imports that checkout's
code, then reads a number per line on stdin, applies that many updates and prints their CPU
seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
KINDS = ("newcomers", "consent", "answers")
# Updates a citizen sends, per kind.
UPDATES = {"newcomers": 1, "consent": 2, "answers": 4}
# Citizens applied before the first slice: the first updates pay for what is built lazily.
WARM_UP = 20


async def _work(database_url: str, kind: str) -> None:
    """The worker's loop, with the checkout's own modules (sys.path set by ``worker``)."""
    from bot.app import build_core
    from bot.config import load_settings
    from bot.consultations.demo import ensure_demo
    from tests import flows
    from tests.conftest import migrate_database

    several_processes = database_url.startswith("postgresql")
    if several_processes:
        await migrate_database(database_url)
    settings = load_settings(
        _env_file=None, database_url=database_url, data_dir=Path(tempfile.mkdtemp())
    )
    bot = flows.FlowBot(settings, lambda: datetime.now(UTC))
    delivery_locks: Any = None
    delivery_outcomes: Any = None
    await bot.start()
    if several_processes:
        # As `borgerdialog run` builds it on PostgreSQL: chats' deliveries and turns held
        # across processes.
        from bot.dialogue.outbox import OutboxDelivery
        from storage.advisory import ChatDeliveryLocks

        core = bot.core
        delivery_locks = ChatDeliveryLocks(database_url)
        delivery = OutboxDelivery(bot.uow, bot.clock, shared_locks=delivery_locks)
        try:
            from storage.advisory import DeliveryOutcomes
        except ImportError:
            pass  # a checkout from before outcomes had a connection of their own
        else:
            delivery_outcomes = DeliveryOutcomes(database_url)
            delivery = OutboxDelivery(
                bot.uow, bot.clock, shared_locks=delivery_locks, outcomes=delivery_outcomes
            )
        delivery.register(bot.channel)
        bot.core = build_core(
            settings,
            bot.uow,
            core._catalogs,
            delivery,
            bot.clock,
            b"alternate",
            core.health,
            several_processes=True,
        )

        # A reader makes the core take each chat's turn across processes; none is read here.
        async def read_nothing(payload: dict[str, Any]) -> None:
            return None

        bot.core.register_reader(flows.CHANNEL, read_nothing)
    async with bot.uow() as unit:
        await ensure_demo(unit, bot.clock(), settings.zone)
        await unit.commit()

    async def one(chat_id: int) -> None:
        citizen = bot.citizen(chat_id)
        await citizen.write("/start friluftsliv")
        # The consent card's first button gives consent; each question's first button is an
        # answer (the example's first two questions take one choice each).
        for _ in range(UPDATES[kind] - 1):
            await citizen.tap(citizen.messages()[-1].labels()[0])

    for chat_id in range(10**9, 10**9 + WARM_UP):
        await one(chat_id)
    # As `borgerdialog run` does once serving (bot.app.prepare_collector_for_serving), where
    # that exists: the versions compared should differ in their own code only.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
    loop = asyncio.get_running_loop()
    next_chat = 1
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            break
        count = int(line)
        started = time.process_time()
        for chat_id in range(next_chat, next_chat + count):
            await one(chat_id)
        print(time.process_time() - started, flush=True)
        next_chat += count
    await bot.stop()
    for own_connection in (delivery_locks, delivery_outcomes):
        if own_connection is not None:
            await own_connection.close()


def worker(checkout: Path, database_url: str, kind: str) -> None:
    sys.path.insert(0, str(checkout))
    if hasattr(os, "sched_setaffinity"):
        # Both workers on the same core, the one the driver runs on: left to the kernel each
        # stays on a core of its own, and on a shared machine two cores' speeds differ by a
        # fifth and more (two runs of the same code came out 1.2 apart).
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    asyncio.run(_work(database_url, kind))


def _database_url(database: str, admin_url: str | None, work: Path) -> str:
    name = f"alternate_{uuid.uuid4().hex[:12]}"
    if database == "sqlite":
        return f"sqlite+aiosqlite:///{work / name}.sqlite3"
    from tests.postgres import create_database

    assert admin_url is not None
    return create_database(admin_url, name)


def compare(
    checkouts: list[Path], database: str, kind: str, slices: int, size: int
) -> dict[str, Any]:
    """Run both checkouts' workers in alternating slices; return each one's CPU per update."""
    from tests.postgres import ThrowawayPostgres, find_bindir

    postgres = None
    admin_url = None
    if database == "postgresql":
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL's server binaries are not installed")
        postgres = ThrowawayPostgres(bindir, in_memory=True)
        postgres.start()
        admin_url = postgres.admin_url()
    work = Path(tempfile.mkdtemp(prefix="borgerdialog-alternate-"))
    workers: list[subprocess.Popen[str]] = []
    try:
        for checkout in checkouts:
            command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(checkout)]
            command += [_database_url(database, admin_url, work), kind]
            # The same string hashes in both: with hash randomisation two processes of the same
            # code differ by a few per cent (their dicts and sets laid out differently).
            environment = {**os.environ, "PYTHONHASHSEED": "0"}
            workers.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=environment,
                )
            )
        per_update: list[list[float]] = [[] for _ in checkouts]
        updates = size * UPDATES[kind]
        for number in range(slices):
            order = range(len(workers)) if number % 2 == 0 else reversed(range(len(workers)))
            for index in order:
                process = workers[index]
                assert process.stdin is not None
                assert process.stdout is not None
                process.stdin.write(f"{size}\n")
                process.stdin.flush()
                answer = process.stdout.readline()
                if not answer:
                    raise SystemExit(f"the worker of {checkouts[index]} stopped")
                per_update[index].append(float(answer) / updates * 1000)
        for process in workers:
            assert process.stdin is not None
            process.stdin.write("\n")
            process.stdin.flush()
            process.wait(timeout=60)
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
        if postgres is not None:
            postgres.stop()
    before, after = per_update
    ratios = [b / a for a, b in zip(before, after, strict=True)]
    return {
        "ms_per_update": {str(c): values for c, values in zip(checkouts, per_update, strict=True)},
        "median_ratio": statistics.median(ratios),
        "total_ratio": sum(after) / sum(before),
    }


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkouts", nargs=2, type=Path, required=True, metavar=("A", "B"))
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--kind", choices=KINDS, default="newcomers")
    parser.add_argument("--slices", type=int, default=10, help="slices of each (10)")
    parser.add_argument("--size", type=int, default=50, help="citizens a slice (50)")
    arguments = parser.parse_args()
    for checkout in arguments.checkouts:
        if not (checkout / "tests" / "flows.py").is_file():
            parser.error(f"{checkout}: not a checkout of borgerdialog with tests/flows.py")
    result = compare(
        [c.resolve() for c in arguments.checkouts],
        arguments.database,
        arguments.kind,
        arguments.slices,
        arguments.size,
    )
    for checkout, values in result["ms_per_update"].items():
        shown = " ".join(f"{value:.2f}" for value in values)
        print(f"{checkout}: median {statistics.median(values):.2f} ms CPU/update ({shown})")
    print(
        f"B / A, CPU per update: median of the slices' ratios {result['median_ratio']:.3f}, "
        f"all slices {result['total_ratio']:.3f}"
    )


if __name__ == "__main__":
    main()
