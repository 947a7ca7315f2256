"""Benchmark: the whole bot under load, as a ratio to a bare python-telegram-bot bot, same run.

Run: ``.venv/bin/python -m tests.benchmarks.load`` (``--help`` for the sizes; ``--quick`` is the
small run CI makes so the benchmark keeps working).

The fake Bot API runs in this process with a simulated round trip on every call and Telegram's
per-chat limits lifted (a load test, not a flood-control test). Every bot under test is a process
of its own that long-polls the fake exactly as it would poll Telegram:

1. **Burst**: the same N citizens write at once. The baseline is a bare PTB bot on our aiohttp
   transport (``tests.benchmarks.bare_bot``) answering each message with one text; borgerdialog
   (``borgerdialog demo``: the example consultation, open) gets ``/start friluftsliv`` from each
   and must send every citizen its whole answer. Rates are updates per second from the first
   update queued to the last answer received, on SQLite and on PostgreSQL when its server
   binaries are installed.

Numbers are printed as a table and, with ``--json``, as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fake_telegram import FakeBot, FakeTelegram
from tests.postgres import ThrowawayPostgres, create_database, find_bindir, free_port

PROJECT = Path(__file__).resolve().parents[2]
# How long a bot may take to come up and answer its first citizen.
START_SECONDS = 120.0
# Citizens' ids: the warm-up citizen, then the burst.
WARM_UP_CITIZEN = 1
FIRST_CITIZEN = 100_000
# Where py-spy's profiles of borgerdialog go (--profile); None: no profiling.
PROFILE_DIR: Path | None = None


def rss_megabytes(pid: int) -> float:
    """The resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: gave up waiting for {what} after {seconds:.0f} s")
        time.sleep(0.02)


def answered_chats(fake: FakeTelegram, bot: FakeBot, citizens: range, messages: int) -> int:
    """How many of these citizens have received at least ``messages`` messages."""

    def count() -> int:
        return sum(1 for c in citizens if len(bot.transcript.get(c, ())) >= messages)

    return fake.call(count)


class BotProcess:
    """A bot under test, started as its own process against the fake."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self._log = log.open("w")
        self.process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        return "\n".join(Path(self._log.name).read_text().splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(
                f"benchmark: the bot exited ({self.process.returncode}); see {self._log.name}"
            )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def bot_environment(
    bot: FakeBot, fake: FakeTelegram, database_url: str, work: Path
) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BORGERDIALOG_")}
    return {
        **inherited,
        "BORGERDIALOG_TELEGRAM_TOKEN": bot.token,
        "BORGERDIALOG_TELEGRAM_API_URL": fake.api_url,
        "BORGERDIALOG_DATABASE_URL": database_url,
        "BORGERDIALOG_DATA_DIR": str(work),
        "BORGERDIALOG_HTTP_PORT": str(free_port()),
        "BORGERDIALOG_POLLING_TIMEOUT": "1",
        "BORGERDIALOG_LOG_LEVEL": "WARNING",
    }


@contextmanager
def running_bot(
    kind: str, fake: FakeTelegram, database_url: str, work: Path
) -> Iterator[tuple[FakeBot, BotProcess, int]]:
    """Start the bare bot or borgerdialog; yield the fake's handle, the process and how many
    messages a citizen gets in answer to their first message."""
    bot = fake.new_bot()
    work.mkdir(parents=True, exist_ok=True)
    env = bot_environment(bot, fake, database_url, work)
    if kind == "bare":
        command = [
            sys.executable,
            "-m",
            "tests.benchmarks.bare_bot",
            "--token",
            bot.token,
            "--api-url",
            fake.api_url,
        ]
    else:
        # PostgreSQL's schema is made by an operator's command, never by the bot itself.
        subprocess.run(
            [sys.executable, "-m", "bot", "migrate"],
            cwd=PROJECT,
            env=env,
            check=True,
            capture_output=True,
        )
        command = [sys.executable, "-m", "bot", "demo"]
        if PROFILE_DIR is not None:
            # py-spy samples the bot from outside; it writes collapsed stacks when the bot ends.
            output = PROFILE_DIR / f"{work.name}.collapsed"
            command = [
                "py-spy",
                "record",
                "--format",
                "raw",
                "--gil",
                "-r",
                "200",
                "-o",
                str(output),
                "--",
                *command,
            ]
    process = BotProcess(command, env, work / f"{kind}.log")
    try:
        bot.send_message(WARM_UP_CITIZEN, first_message(kind))
        try:
            wait_until(lambda: bool(bot.texts(WARM_UP_CITIZEN)), START_SECONDS, f"{kind} to answer")
        except SystemExit:
            print(process.log_tail(), file=sys.stderr)
            raise
        # The whole answer: wait until nothing more arrives for a moment.
        settled, last = time.monotonic(), -1
        while time.monotonic() - settled < 1.0:
            now_count = len(bot.texts(WARM_UP_CITIZEN))
            if now_count != last:
                settled, last = time.monotonic(), now_count
            time.sleep(0.05)
        yield bot, process, last
    finally:
        process.stop()


def first_message(kind: str) -> str:
    return "hej" if kind == "bare" else "/start friluftsliv"


def burst(
    kind: str, fake: FakeTelegram, database_url: str, work: Path, citizens: int
) -> dict[str, float]:
    """Rate at which ``citizens`` first messages sent at once are fully answered."""
    with running_bot(kind, fake, database_url, work) as (bot, process, answer_size):
        who = range(FIRST_CITIZEN, FIRST_CITIZEN + citizens)
        cpu_before = cpu_seconds(process.process.pid)
        started = time.perf_counter()
        bot.send_many([(citizen, first_message(kind)) for citizen in who])
        deadline = time.monotonic() + 60 + citizens  # a second a citizen is already broken
        while answered_chats(fake, bot, who, answer_size) < citizens:
            process.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit(f"benchmark: {kind} did not answer every citizen in time")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(process.process.pid) - cpu_before
        return {
            "updates_per_second": citizens / elapsed,
            "cpu_ms_per_update": cpu * 1000 / citizens,
            "messages_per_answer": answer_size,
            "rss_mb": rss_megabytes(process.process.pid),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="round trip (s)")
    parser.add_argument("--citizens", type=int, default=2000, help="citizens in the burst")
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, for CI")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--profile", type=Path, help="sample borgerdialog with py-spy; collapsed stacks go here"
    )
    arguments = parser.parse_args()
    global PROFILE_DIR
    PROFILE_DIR = arguments.profile
    # The fake logs every connection the bots drop when they stop; that is not news here.
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    if arguments.quick:
        arguments.citizens = 50
    results: dict[str, Any] = {"latency_ms": arguments.latency * 1000}
    fake = FakeTelegram(auto_chats=True)
    fake.start()
    fake.latency = arguments.latency
    fake.private_burst = 1_000_000.0
    postgres: ThrowawayPostgres | None = None
    with tempfile.TemporaryDirectory(prefix="borgerdialog-load-") as scratch:
        work = Path(scratch)
        try:
            print(
                f"burst: {arguments.citizens} citizens write at once, "
                f"round trip {arguments.latency * 1000:.0f} ms"
            )
            bare = burst("bare", fake, "", work, arguments.citizens)
            results["bare"] = bare
            print(
                f"  bare python-telegram-bot (aiohttp): {bare['updates_per_second']:8.0f} updates/s"
                f"  {bare['cpu_ms_per_update']:6.2f} ms CPU/update"
            )
            for database in arguments.databases:
                if database == "postgresql":
                    bindir = find_bindir()
                    if bindir is None:
                        print("  PostgreSQL: no server binaries found, skipped")
                        continue
                    postgres = ThrowawayPostgres(bindir)
                    postgres.start()
                    url = create_database(postgres.admin_url(), "load_burst")
                else:
                    url = f"sqlite+aiosqlite:///{work}/burst.sqlite3"
                ours = burst("borgerdialog", fake, url, work / database, arguments.citizens)
                ours["ratio_to_bare"] = ours["updates_per_second"] / bare["updates_per_second"]
                results[f"borgerdialog_{database}"] = ours
                print(
                    f"  borgerdialog on {database:10s}:      {ours['updates_per_second']:8.0f} "
                    f"updates/s  {ours['cpu_ms_per_update']:6.2f} ms CPU/update  "
                    f"ratio {ours['ratio_to_bare']:.2f}x  "
                    f"({ours['messages_per_answer']:.0f} messages an answer)"
                )
        finally:
            if postgres is not None:
                postgres.stop()
            fake.stop()
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
