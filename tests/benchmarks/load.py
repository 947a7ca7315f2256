"""Benchmark: the whole bot under load, as a ratio to a bare python-telegram-bot bot, same run.

Run: ``.venv/bin/python -m tests.benchmarks.load`` (``--help`` for the sizes; ``--quick`` is the
small run CI makes so the benchmark keeps working; ``--parts`` reruns one part).

The fake Bot API runs in this process with a simulated round trip on every call and Telegram's
per-chat limits lifted (a load test, not a flood-control test). Every bot under test is a process
of its own that long-polls the fake exactly as it would poll Telegram:

1. **Burst**: the same N citizens write at once. The baseline is a bare PTB bot on our aiohttp
   transport (``tests.benchmarks.bare_bot``) answering each message with one text; borgerdialog
   (``borgerdialog demo``: the example consultation, open) gets ``/start friluftsliv`` from each
   and must send every citizen its whole answer. Rates are updates per second from the first
   update queued to the last answer received, on SQLite and on PostgreSQL when its server
   binaries are installed.
2. **Walkers**: N citizens at once walk the example consultation from ``/start friluftsliv`` to
   its thanks, as people do after a post in a channel: consent, every kind of question, the
   hear-back question. Each answers as soon as the question is there. For every step: the time
   from queuing the update in the fake to the fake receiving the bot's first message or edit in
   that chat (one simulated round trip is in it: the update's way out of getUpdates and the
   reply's way in), and to the step's whole answer (the next question shown). Nobody pauses to
   think, so enough walkers keep the bot busy all the time and the latencies are then mostly
   waiting behind other citizens' updates; steps per second says how many the bot got through.
   ``--reading S`` lets each walker first read every question for S seconds on average (half to
   one and a half times S, drawn per walker and step), as citizens do: the same walk at the
   pace people take it.
3. **Scale**: a database with P participants, of whom 10,000 are halfway through the example
   consultation, bulk-seeded before the bot starts. The bot's memory once started and after a
   burst, and its CPU per update for a burst of typed answers from existing participants,
   against the same burst in a database of only those participants.
4. **Broadcast beside walkers**: staff plan a post to S subscribers (``borgerdialog plan
   import``, sent now); walkers walk while it goes out, and their p99 is compared with walkers
   of the same bot before the post.

Numbers are printed as a table and, with ``--json``, as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.consultations.demo import DEMO_SLUG, ensure_demo
from storage.database import create_engine, create_session_factory
from storage.models import Answer, Consultation, Participant, Participation
from storage.uow import UnitOfWorkFactory
from tests.benchmarks.counting import totals
from tests.citizens import question_ids
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.postgres import ThrowawayPostgres, create_database, find_bindir, free_port

PROJECT = Path(__file__).resolve().parents[2]
# Where borgerdialog itself runs from (--checkout): another checkout, such as a worktree of an
# older commit, measures that version with this driver. The bare bot always runs from here.
CHECKOUT = PROJECT
PARTS = ("burst", "walkers", "scale", "broadcast")
# How long a bot may take to come up and answer its first citizen.
START_SECONDS = 120.0
# Citizens' ids, each group its own range: the warm-up citizen, the burst, the walkers (the
# broadcast part walks twice, before and during the post), and seeded participants.
WARM_UP_CITIZEN = 1
FIRST_CITIZEN = 100_000
FIRST_WALKER = 200_000
FIRST_QUIET_WALKER = 300_000
FIRST_BUSY_WALKER = 400_000
FIRST_SEEDED = 1_000_000
# Of the seeded participants, this many are halfway through the example (the rest finished).
OPEN_PARTICIPATIONS = 10_000
# The scale part's burst: typed answers from this many existing participants.
SCALE_BURST = 1_000
# How often the walkers' driver reads the fake's request log. Latencies come from the log's
# own timestamps, so this only delays a walker's next step, never what is measured.
WATCH_SECONDS = 0.005
# A step not answered by then means the bot is stuck or the walk no longer fits the bot.
STEP_SECONDS = 120.0
# The planned post of the broadcast part, as staff write a content-plan sheet.
POST = "Borgermøde om den nye friluftspolitik torsdag kl. 19 på rådhuset"
# The sizes of a run (--citizens, --walkers, --participants, --subscribers), and of --quick.
FULL = {"citizens": 2000, "walkers": 150, "participants": 100_000, "subscribers": 5_000}
QUICK = {"citizens": 50, "walkers": 10, "participants": 2_000, "subscribers": 200}
# Where py-spy's profiles of borgerdialog go (--profile); None: no profiling.
PROFILE_DIR: Path | None = None
# Where the counts of borgerdialog's SQL statements and flushes go (--count-statements).
COUNT_DIR: Path | None = None


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


def percentile(values: Sequence[float], share: int) -> float:
    """The ``share``-th percentile (1–99), interpolated between the nearest samples."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[share - 1]


class BotProcess:
    """A bot under test, started as its own process against the fake."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.env = env
        self._log = log.open("w")
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
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
    kind: str,
    fake: FakeTelegram,
    database_url: str,
    work: Path,
    *,
    prepare: Callable[[str], None] | None = None,
    settings: dict[str, str] | None = None,
) -> Iterator[tuple[FakeBot, BotProcess, int]]:
    """Start the bare bot or borgerdialog; yield the fake's handle, the process and how many
    messages a citizen gets in answer to their first message.

    ``prepare`` gets the database URL once the schema is made and before the bot starts (to
    seed it); ``settings`` are more BORGERDIALOG_ variables for the bot.
    """
    bot = fake.new_bot()
    work.mkdir(parents=True, exist_ok=True)
    env = {**bot_environment(bot, fake, database_url, work), **(settings or {})}
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
            cwd=CHECKOUT,
            env=env,
            check=True,
            capture_output=True,
        )
        if prepare is not None:
            prepare(database_url)
        command = [sys.executable, "-m", "bot", "demo"]
        if COUNT_DIR is not None:
            counter = Path(__file__).with_name("counting.py")
            command = [sys.executable, str(counter), str(counts_file(work)), "demo"]
        if PROFILE_DIR is not None:
            # py-spy samples the bot from outside; it writes collapsed stacks when the bot ends.
            output = PROFILE_DIR / f"{work.name}.collapsed"
            # Installed into the virtualenv (pip install py-spy), it sits beside its Python even
            # when the virtualenv is not activated.
            beside = Path(sys.executable).parent / "py-spy"
            command = [
                str(beside) if beside.exists() else "py-spy",
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
    process = BotProcess(
        command, env, work / f"{kind}.log", PROJECT if kind == "bare" else CHECKOUT
    )
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


def counts_file(work: Path) -> Path:
    """Where a part's bot writes its statement counts (--count-statements)."""
    assert COUNT_DIR is not None
    return COUNT_DIR / f"{work.parent.name}-{work.name}.tsv"


def statement_counts(work: Path, updates: int) -> dict[str, float]:
    """Statements and flushes per update of a part's bot, once it has stopped; {} when not
    counting. The bot's start and the warm-up citizen are in the counts (a few dozen)."""
    if COUNT_DIR is None:
        return {}
    statements, flushes = totals(counts_file(work))
    return {"statements_per_update": statements / updates, "flushes_per_update": flushes / updates}


def counted(figures: dict[str, Any]) -> str:
    """The statement counts as the tables print them ('' when not counting)."""
    if "statements_per_update" not in figures:
        return ""
    return (
        f"; {figures['statements_per_update']:.1f} statements and "
        f"{figures['flushes_per_update']:.1f} flushes an update"
    )


def first_message(kind: str) -> str:
    return "hej" if kind == "bare" else "/start friluftsliv"


# -- part 1: burst -------------------------------------------------------------------------------


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
        figures = {
            "updates_per_second": citizens / elapsed,
            "cpu_ms_per_update": cpu * 1000 / citizens,
            "messages_per_answer": answer_size,
            "rss_mb": rss_megabytes(process.process.pid),
        }
    if kind == "bare":
        return figures
    return {**figures, **statement_counts(work, citizens)}


# -- part 2: walkers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One thing a walker does, and what the bot does in answer: new messages and edits."""

    how: str  # "write" a text, or "tap" the button with this label
    what: str
    messages: int
    edits: int


# Free-text answers stay under 30 letters: screening treats a longer text that many people send
# alike as spam, and the walkers are meant to be citizens, not a flood.
PLACES = ("Ved skoven bag hallen", "Nord for søen", "I parken ved skolen", "Langs åen")
IDEAS = ("Flere bænke ved søen", "Bedre skilte på stierne", "Flere shelters", "Lys på stien")


def walk_of(walker: int) -> list[Step]:
    """The way through the example consultation: consent, every kind of question, hear-back.

    A tap on an answer edits the question (its buttons go) and asks the next; a typed answer
    edits the question it answers too. Ticking a box only edits.
    """
    return [
        Step("write", "/start friluftsliv", 2, 0),  # the introduction and the consent card
        Step("tap", "Ja, jeg giver samtykke", 1, 1),
        Step("tap", ("Under 25", "25-64", "65 eller derover")[walker % 3], 1, 1),  # single
        Step("tap", ("Nord", "Midtby", "Syd")[walker % 3], 1, 1),  # district
        Step("tap", "☐ Går tur", 0, 1),  # multiple: tick, tick, done
        Step("tap", "☐ Cykler", 0, 1),
        Step("tap", "Færdig", 1, 1),
        Step("tap", str(1 + walker % 5), 1, 1),  # scale
        Step("tap", "Ja", 1, 1),  # yes/no; yes asks the conditional text question
        Step("write", PLACES[walker % len(PLACES)], 1, 1),  # text
        Step("write", str(walker % 30), 1, 1),  # number
        Step("write", "8000", 1, 1),  # postcode
        Step("write", IDEAS[walker % len(IDEAS)], 2, 1),  # idea; then thanks and hear-back
        Step("tap", "Nej", 1, 1),  # no news, thanks; the ideas phase is offered
    ]


THANKS = "Tak for dine svar"
# Bot API calls that show the citizen something in a chat. answerCallbackQuery names no chat
# (it only stops the button's spinner), so it is not a reply here.
SENDS = {"sendmessage", "sendphoto", "senddocument"}
EDITS = {"editmessagetext", "editmessagereplymarkup", "editmessagecaption"}


@dataclass
class ChatView:
    """What the driver knows about one walker's chat, from the fake's request log."""

    sends: int = 0
    edits: int = 0
    # The step in flight: when its update was queued, when the first and last reply came.
    queued_at: float = float("inf")
    first_reply_at: float | None = None
    last_reply_at: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class ReplyWatch:
    """Follows the fake's request log for many chats at once, so walkers need not poll.

    One reader for all walkers: a walker polling its own chat would cost the fake's loop a call
    every few milliseconds per walker, time taken from serving the bot. The log, not
    ``SentMessage.sent_at``: an edit leaves a message's ``sent_at`` as it was, and the log's
    time is when the fake received the call, whenever the driver gets round to reading it.
    """

    def __init__(self, fake: FakeTelegram, bot: FakeBot, chats: Sequence[int]) -> None:
        self._fake, self._bot = fake, bot
        self.views = {chat: ChatView() for chat in chats}
        self._cursor = fake.call(lambda: len(bot.log))

    def read(self) -> None:
        cursor = self._cursor
        entries = self._fake.call(lambda: self._bot.log[cursor:])
        self._cursor += len(entries)
        for at, method, params, status in entries:
            name = method.lower()
            # A refused call shows the citizen nothing; only what Telegram accepted counts.
            if status != 200 or (name not in SENDS and name not in EDITS):
                continue
            view = self.views.get(_chat_id(params))
            if view is None:
                continue
            if name in SENDS:
                view.sends += 1
            else:
                view.edits += 1
            if at >= view.queued_at:
                if view.first_reply_at is None:
                    view.first_reply_at = at
                view.last_reply_at = at
            view.changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.read()
            await asyncio.sleep(WATCH_SECONDS)


def _chat_id(params: dict[str, Any]) -> int:
    """The chat a call is for; 0 if it names none (chat ids in form fields arrive as text)."""
    try:
        return int(params.get("chat_id") or 0)
    except ValueError:
        return 0


def find_button(bot: FakeBot, chat: int, label: str) -> tuple[int, str]:
    """A visible button by its label, newest message first: (message id, callback data)."""
    messages = bot.sent(chat)
    for message in reversed(messages):
        for button in message.buttons:
            if button["text"] == label:
                return message.message_id, button["callback_data"]
    shown = [b["text"] for m in messages for b in m.buttons]
    raise SystemExit(f"benchmark: walker {chat} sees no button {label!r}; shown: {shown}")


@dataclass
class StepTimes:
    """One answered step: update queued → first reply, and → the whole answer (seconds)."""

    first: float
    whole: float


async def walk(
    bot: FakeBot, chat: int, view: ChatView, steps: list[Step], reading: float = 0.0
) -> list[StepTimes]:
    """One citizen's way through the consultation, each step once the last is answered and read
    (``reading`` seconds on average; 0: at once)."""
    times: list[StepTimes] = []
    pace = random.Random(chat)  # the same pauses in every run, for comparisons
    for step in steps:
        if reading:
            await asyncio.sleep(pace.uniform(0.5 * reading, 1.5 * reading))
        # Found before the clock starts: a citizen sees the button before pressing it.
        pressed = find_button(bot, chat, step.what) if step.how == "tap" else None
        sends, edits = view.sends + step.messages, view.edits + step.edits
        view.first_reply_at, view.queued_at = None, time.monotonic()
        if pressed is None:
            bot.send_message(chat, step.what)
        else:
            bot.press_button(chat, *pressed)
        deadline = view.queued_at + STEP_SECONDS
        while view.sends < sends or view.edits < edits:
            view.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SystemExit(
                    f"benchmark: walker {chat} got no answer to {step.what!r} "
                    f"({view.sends}/{sends} messages, {view.edits}/{edits} edits)"
                )
            try:
                await asyncio.wait_for(view.changed.wait(), remaining)
            except TimeoutError:
                continue
        assert view.first_reply_at is not None
        times.append(
            StepTimes(view.first_reply_at - view.queued_at, view.last_reply_at - view.queued_at)
        )
    return times


async def walk_all(
    fake: FakeTelegram, bot: FakeBot, walkers: range, reading: float = 0.0
) -> list[StepTimes]:
    """Every walker at once, as asyncio tasks; each step's times, all walkers together."""
    watch = ReplyWatch(fake, bot, list(walkers))
    stop = asyncio.Event()
    reader = asyncio.create_task(watch.run(stop))
    try:
        walks = await asyncio.gather(
            *(walk(bot, chat, watch.views[chat], walk_of(chat), reading) for chat in walkers)
        )
    finally:
        stop.set()
        await reader
    # A reply more than a walk expects would have been counted as the next step's answer.
    await asyncio.sleep(0.5)
    watch.read()
    for chat in walkers:
        expected = walk_of(chat)
        view = watch.views[chat]
        if (view.sends, view.edits) != (
            sum(s.messages for s in expected),
            sum(s.edits for s in expected),
        ):
            raise SystemExit(
                f"benchmark: walker {chat} got {view.sends} messages and {view.edits} edits; "
                "the walk in walk_of() no longer matches what the bot says"
            )
    if not all(any(THANKS in t for t in bot.texts(chat)) for chat in walkers):
        raise SystemExit("benchmark: a walker finished without the consultation's thanks")
    return [times for one in walks for times in one]


def walk_figures(
    fake: FakeTelegram, bot: FakeBot, process: BotProcess, walkers: range, reading: float = 0.0
) -> dict[str, float]:
    """Walk everyone at once; latency percentiles, steps, and the bot's CPU per step."""
    cpu_before, driver_before = cpu_seconds(process.process.pid), time.process_time()
    started = time.perf_counter()
    times = asyncio.run(walk_all(fake, bot, walkers, reading))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(process.process.pid) - cpu_before
    # This process serves the fake and drives the walkers: near one core, it is the limit.
    driver = (time.process_time() - driver_before) / elapsed
    first = [t.first * 1000 for t in times]
    whole = [t.whole * 1000 for t in times]
    return {
        "walkers": len(walkers),
        "steps": len(times),
        "first_reply_p50_ms": percentile(first, 50),
        "first_reply_p99_ms": percentile(first, 99),
        "whole_answer_p50_ms": percentile(whole, 50),
        "whole_answer_p99_ms": percentile(whole, 99),
        "steps_per_second": len(times) / elapsed,
        "cpu_ms_per_step": cpu * 1000 / len(times),
        "driver_cpu_share": driver,
    }


def walkers_part(
    fake: FakeTelegram, database_url: str, work: Path, walkers: int, reading: float = 0.0
) -> dict[str, float]:
    """N citizens walk the example consultation at once, on a fresh bot."""
    chats = range(FIRST_WALKER, FIRST_WALKER + walkers)
    with running_bot("borgerdialog", fake, database_url, work) as (bot, process, _):
        figures = walk_figures(fake, bot, process, chats, reading)
    paced = {"reading_seconds": reading} if reading else {}
    return {**figures, **paced, **statement_counts(work, int(figures["steps"]))}


def print_walk(label: str, figures: dict[str, float]) -> None:
    print(
        f"  {label}: first reply p50 {figures['first_reply_p50_ms']:6.0f} ms, "
        f"p99 {figures['first_reply_p99_ms']:6.0f} ms; whole answer p50 "
        f"{figures['whole_answer_p50_ms']:6.0f} ms, p99 {figures['whole_answer_p99_ms']:6.0f} ms; "
        f"{figures['steps']:.0f} steps, {figures['steps_per_second']:.0f} steps/s, "
        f"{figures['cpu_ms_per_step']:.1f} ms CPU/step "
        f"(fake and driver: {figures['driver_cpu_share']:.0%} of a core){counted(figures)}"
    )


# -- seeding (parts 3 and 4) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """Who is in a database before the bot starts, all in the example consultation.

    The first ``answering`` participants gave consent and answered up to the number question
    (typing a number answers it); the rest finished, and the first ``subscribers`` of those
    asked to hear back.
    """

    participants: int
    answering: int = 0
    subscribers: int = 0


# Rows per INSERT batch: big enough to be fast, small enough to keep memory flat.
SEED_BATCH = 20_000
# The answers of someone halfway through, and of someone who finished (keys as in the YAML).
HALFWAY = {
    "age_band": "age_25_64",
    "district": "north",
    "activities": ["walking", "cycling"],
    "satisfaction": "3",
    "dog_zones": "no",
}
FINISHED = {**HALFWAY, "visits": 8, "postcode": None, "idea": None}


def seed(database_url: str, who: Seed) -> None:
    """Write the demo consultation and ``who`` straight to the (migrated) database."""
    started = time.perf_counter()
    asyncio.run(_seed(database_url, who))
    print(f"    seeded {who.participants:,} participants in {time.perf_counter() - started:.1f} s")


async def _seed(database_url: str, who: Seed) -> None:
    engine = create_engine(database_url)
    try:
        now = datetime.now(UTC)
        # The demo opens the consultation itself, but only once the bot is up: do it first.
        async with UnitOfWorkFactory(create_session_factory(engine))() as uow:
            await ensure_demo(uow, now, ZoneInfo("Europe/Copenhagen"))
            await uow.commit()
        then = now - timedelta(days=2)
        async with engine.begin() as connection:
            consultation, questions = await question_ids(connection, DEMO_SLUG)
            participants = await _add_participants(connection, who, then)
            rows = (
                _participation(n, who, consultation, participant, questions, then)
                for n, participant in enumerate(participants)
            )
            participations = await _add_participations(connection, participants, rows)
            await _resume_halfway(connection, participants[: who.answering], participations)
            await _add_answers(connection, who, participations, questions, then)
            # Numbers handed out later must follow the seeded ones.
            await connection.execute(
                update(Consultation)
                .where(Consultation.id == consultation)
                .values(participant_counter=who.participants)
            )
    finally:
        await engine.dispose()


async def _add_participants(connection: AsyncConnection, who: Seed, then: datetime) -> list[int]:
    """Insert the participants; their ids, in the order of their chat ids."""
    for rows in _batches(
        {
            "channel": "telegram",
            "chat_id": str(FIRST_SEEDED + n),
            "language": None,
            "state": {"last_language": "da"},
            "events_applied": 12,
            "created_at": then,
            "last_seen_at": then,
        }
        for n in range(who.participants)
    ):
        await connection.execute(insert(Participant), rows)
    ids = dict((await connection.execute(select(Participant.chat_id, Participant.id))).all())
    return [ids[str(FIRST_SEEDED + n)] for n in range(who.participants)]


def _participation(
    n: int,
    who: Seed,
    consultation: int,
    participant: int,
    questions: dict[str, int],
    then: datetime,
) -> dict[str, Any]:
    answering = n < who.answering
    return {
        "consultation_id": consultation,
        "participant_id": participant,
        "pseudonym": f"p-{n:010d}",
        "number": n + 1,
        "status": "answering" if answering else "completed",
        "current_question_id": questions["visits"] if answering else None,
        # No question message: the seeded chats have none in the fake to edit.
        "question_message_id": None,
        "pending_selection": [],
        "hear_back": None if answering else n < who.answering + who.subscribers,
        "consent_at": then,
        "completed_at": None if answering else then,
        "started_at": then,
        "updated_at": then,
    }


async def _add_participations(
    connection: AsyncConnection, participants: list[int], rows: Iterable[dict[str, Any]]
) -> list[int]:
    """Insert the participations; their ids, in the order of their participants."""
    for batch in _batches(rows):
        await connection.execute(insert(Participation), batch)
    ids = dict(
        (await connection.execute(select(Participation.participant_id, Participation.id))).all()
    )
    return [ids[participant] for participant in participants]


async def _resume_halfway(
    connection: AsyncConnection, participants: list[int], participations: list[int]
) -> None:
    """Put the conversation of each participant halfway in their participation, so that what
    they type next answers its question."""
    table = Participant.metadata.tables[Participant.__tablename__]
    for rows in _batches(
        {"b_id": participant, "b_state": {"last_language": "da", "participation": participation}}
        for participant, participation in zip(participants, participations, strict=False)
    ):
        await connection.execute(
            update(table).where(table.c.id == bindparam("b_id")).values(state=bindparam("b_state")),
            rows,
        )


async def _add_answers(
    connection: AsyncConnection,
    who: Seed,
    participations: list[int],
    questions: dict[str, int],
    then: datetime,
) -> None:
    for rows in _batches(
        {
            "participation_id": participation,
            "question_id": questions[key],
            "value": value,
            "skipped": value is None,
            "language": None,
            "visibility": "visible",
            "fingerprint": None,
            "answered_at": then,
        }
        for n, participation in enumerate(participations)
        for key, value in (HALFWAY if n < who.answering else FINISHED).items()
    ):
        await connection.execute(insert(Answer), rows)


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == SEED_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# -- part 3: scale -------------------------------------------------------------------------------


def scale_run(
    fake: FakeTelegram, database_url: str, work: Path, who: Seed, burst: int
) -> dict[str, float]:
    """Start the bot on a seeded database: its memory, and its CPU for a burst of typed
    answers from ``burst`` participants halfway through the consultation."""
    with running_bot(
        "borgerdialog", fake, database_url, work, prepare=lambda url: seed(url, who)
    ) as (bot, process, _):
        pid = process.process.pid
        rss_started = rss_megabytes(pid)
        writers = range(FIRST_SEEDED, FIRST_SEEDED + burst)
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        # Each answers the number question they are at; the bot asks the next one.
        bot.send_many([(chat, "12") for chat in writers])
        deadline = time.monotonic() + 60 + burst
        while answered_chats(fake, bot, writers, 1) < burst:
            process.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit("benchmark: the bot did not answer every participant in time")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        answer = bot.texts(writers[-1])[0]
        if "postnummer" not in answer:
            raise SystemExit(
                f"benchmark: a typed answer got {answer[:60]!r}, not the next question"
            )
        return {
            "participants": who.participants,
            "rss_started_mb": rss_started,
            "rss_after_burst_mb": rss_megabytes(pid),
            "cpu_ms_per_update": cpu * 1000 / burst,
            "updates_per_second": burst / elapsed,
        }


def scale_part(
    fake: FakeTelegram, urls: Callable[[str], str], work: Path, participants: int
) -> dict[str, Any]:
    """The same burst with few and with ``participants`` participants in the database."""
    answering = min(OPEN_PARTICIPATIONS, participants // 10)
    burst = min(SCALE_BURST, answering)
    few = scale_run(fake, urls("scale_few"), work / "few", Seed(burst, answering=burst), burst)
    many = scale_run(
        fake, urls("scale_many"), work / "many", Seed(participants, answering=answering), burst
    )
    return {
        "burst": burst,
        "open_participations": answering,
        "few": few,
        "many": many,
        "cpu_ratio": many["cpu_ms_per_update"] / few["cpu_ms_per_update"],
        "rss_ratio": many["rss_after_burst_mb"] / few["rss_after_burst_mb"],
    }


def print_scale(figures: dict[str, Any]) -> None:
    for size in ("few", "many"):
        run = figures[size]
        print(
            f"    {run['participants']:9,.0f} participants: RSS {run['rss_started_mb']:5.0f} MB "
            f"started, {run['rss_after_burst_mb']:5.0f} MB after the burst; "
            f"{run['cpu_ms_per_update']:6.2f} ms CPU/update, "
            f"{run['updates_per_second']:.0f} updates/s"
        )
    print(
        f"    ratio many/few: CPU/update {figures['cpu_ratio']:.2f}x, "
        f"RSS {figures['rss_ratio']:.2f}x"
    )


# -- part 4: broadcast beside walkers ------------------------------------------------------------


def plan_post(env: dict[str, str], work: Path) -> None:
    """Plan a post to every subscriber, now, as staff do: a content-plan sheet and the CLI."""
    sheet = work / "plan.csv"
    sheet.write_text(f"id,when,audience,text_da\nmoede,now,everyone,{POST}\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "bot", "plan", "import", str(sheet)],
        cwd=CHECKOUT,
        env=env,
        check=True,
        capture_output=True,
    )


def delivered(bot: FakeBot) -> int:
    """How many subscribers the post has reached."""
    return len(bot.chats_with(POST))


def broadcast_part(
    fake: FakeTelegram, database_url: str, work: Path, walkers: int, subscribers: int
) -> dict[str, float]:
    """Walkers on a quiet bot, then walkers while a post goes out to every subscriber."""
    who = Seed(subscribers, subscribers=subscribers)
    # The bot looks for due posts every second instead of every ten: the walk waits less.
    settings = {"BORGERDIALOG_PLAN_CHECK_SECONDS": "1"}
    with running_bot(
        "borgerdialog",
        fake,
        database_url,
        work,
        prepare=lambda url: seed(url, who),
        settings=settings,
    ) as (bot, process, _):
        quiet = walk_figures(
            fake, bot, process, range(FIRST_QUIET_WALKER, FIRST_QUIET_WALKER + walkers)
        )
        subscribed = range(FIRST_SEEDED, FIRST_SEEDED + subscribers)
        if answered_chats(fake, bot, subscribed, 1):
            raise SystemExit("benchmark: subscribers got messages before the post was planned")
        plan_post(process.env, work)
        # Walk once the post is under way, not while the bot is still picking its recipients.
        deadline = time.monotonic() + 60
        while delivered(bot) < min(30, subscribers):
            process.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit("benchmark: the planned post did not go out")
            time.sleep(0.2)
        before, started = delivered(bot), time.perf_counter()
        busy = walk_figures(
            fake, bot, process, range(FIRST_BUSY_WALKER, FIRST_BUSY_WALKER + walkers)
        )
        during, elapsed = delivered(bot) - before, time.perf_counter() - started
        if delivered(bot) >= subscribers:
            print("    (the post reached everyone before the walk ended: raise --subscribers)")
    return {
        "subscribers": subscribers,
        "walkers": walkers,
        "quiet_first_reply_p50_ms": quiet["first_reply_p50_ms"],
        "quiet_first_reply_p99_ms": quiet["first_reply_p99_ms"],
        "busy_first_reply_p50_ms": busy["first_reply_p50_ms"],
        "busy_first_reply_p99_ms": busy["first_reply_p99_ms"],
        "p99_ratio": busy["first_reply_p99_ms"] / quiet["first_reply_p99_ms"],
        "quiet_steps_per_second": quiet["steps_per_second"],
        "busy_steps_per_second": busy["steps_per_second"],
        "broadcast_messages_during_walk": during,
        "broadcast_per_second_during_walk": during / elapsed,
    }


def print_broadcast(figures: dict[str, float]) -> None:
    print(
        f"    without the post: first reply p50 {figures['quiet_first_reply_p50_ms']:6.0f} ms, "
        f"p99 {figures['quiet_first_reply_p99_ms']:6.0f} ms, "
        f"{figures['quiet_steps_per_second']:.0f} steps/s"
    )
    print(
        f"    with the post:    first reply p50 {figures['busy_first_reply_p50_ms']:6.0f} ms, "
        f"p99 {figures['busy_first_reply_p99_ms']:6.0f} ms, "
        f"{figures['busy_steps_per_second']:.0f} steps/s; "
        f"{figures['broadcast_messages_during_walk']:.0f} post messages sent meanwhile "
        f"({figures['broadcast_per_second_during_walk']:.0f}/s)"
    )
    print(f"    p99 ratio with/without: {figures['p99_ratio']:.2f}x")


# -- the run -------------------------------------------------------------------------------------


class Databases:
    """Fresh empty databases on demand: SQLite files, or databases in one throwaway PostgreSQL."""

    def __init__(self, work: Path) -> None:
        self._work = work
        self._postgres: ThrowawayPostgres | None = None

    @staticmethod
    def available(kind: str) -> bool:
        return kind == "sqlite" or find_bindir() is not None

    def url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite+aiosqlite:///{self._work}/{name}.sqlite3"
        if self._postgres is None:
            bindir = find_bindir()
            assert bindir is not None
            self._postgres = ThrowawayPostgres(bindir)
            self._postgres.start()
        return create_database(self._postgres.admin_url(), name)

    def stop(self) -> None:
        if self._postgres is not None:
            self._postgres.stop()


def run_parts(
    arguments: argparse.Namespace, fake: FakeTelegram, work: Path, results: dict[str, Any]
) -> None:
    """Run the chosen parts on every chosen database, printing as they finish."""
    databases = Databases(work)
    try:
        kinds = [kind for kind in arguments.databases if databases.available(kind)]
        for kind in sorted(set(arguments.databases) - set(kinds)):
            print(f"({kind}: no server binaries found, skipped)")
        if "burst" in arguments.parts:
            print(
                f"burst: {arguments.citizens} citizens write at once, "
                f"round trip {arguments.latency * 1000:.0f} ms"
            )
            bare = burst("bare", fake, "", work / "bare", arguments.citizens)
            results["bare"] = bare
            print(
                f"  bare python-telegram-bot (aiohttp): {bare['updates_per_second']:8.0f} updates/s"
                f"  {bare['cpu_ms_per_update']:6.2f} ms CPU/update"
            )
            for kind in kinds:
                url = databases.url(kind, "load_burst")
                ours = burst("borgerdialog", fake, url, work / kind / "burst", arguments.citizens)
                ours["ratio_to_bare"] = ours["updates_per_second"] / bare["updates_per_second"]
                results[f"borgerdialog_{kind}"] = ours
                print(
                    f"  borgerdialog on {kind:10s}:      {ours['updates_per_second']:8.0f} "
                    f"updates/s  {ours['cpu_ms_per_update']:6.2f} ms CPU/update  "
                    f"ratio {ours['ratio_to_bare']:.2f}x  "
                    f"({ours['messages_per_answer']:.0f} messages an answer){counted(ours)}"
                )
        if "walkers" in arguments.parts:
            pace = (
                f", reading each question {arguments.reading:g} s on average"
                if arguments.reading
                else ", each step as soon as the last is answered"
            )
            print(
                f"walkers: {arguments.walkers} citizens walk the example consultation at once"
                f"{pace} (update queued → first message or edit; the round trip is in it)"
            )
            for kind in kinds:
                url = databases.url(kind, "load_walkers")
                figures = walkers_part(
                    fake, url, work / kind / "walkers", arguments.walkers, arguments.reading
                )
                results[f"walkers_{kind}"] = figures
                print_walk(f"{kind:10s}", figures)
        if "scale" in arguments.parts:
            print(
                f"scale: {arguments.participants:,} participants, of whom "
                f"{min(OPEN_PARTICIPATIONS, arguments.participants // 10):,} halfway through; "
                "typed answers from existing participants at once"
            )
            for kind in kinds:
                print(f"  {kind}:")
                figures = scale_part(
                    fake,
                    partial(databases.url, kind),
                    work / kind / "scale",
                    arguments.participants,
                )
                results[f"scale_{kind}"] = figures
                print_scale(figures)
        if "broadcast" in arguments.parts:
            print(
                f"broadcast: {arguments.walkers} walkers, before and while a post goes out to "
                f"{arguments.subscribers:,} subscribers"
            )
            for kind in kinds:
                print(f"  {kind}:")
                url = databases.url(kind, "load_broadcast")
                figures = broadcast_part(
                    fake, url, work / kind / "broadcast", arguments.walkers, arguments.subscribers
                )
                results[f"broadcast_{kind}"] = figures
                print_broadcast(figures)
    finally:
        databases.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="round trip (s)")
    # The sizes' defaults are FULL's, or QUICK's with --quick; a size given overrides either.
    parser.add_argument("--citizens", type=int, help="citizens in the burst (2000)")
    parser.add_argument("--walkers", type=int, help="citizens walking at once (150)")
    parser.add_argument(
        "--reading",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="walkers read each question this long on average before answering (0: at once)",
    )
    parser.add_argument(
        "--participants", type=int, help="participants in the scale database (100,000)"
    )
    parser.add_argument(
        "--subscribers", type=int, help="recipients of the broadcast part's post (5,000)"
    )
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--quick", action="store_true", help="small numbers, for CI (sizes given still count)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--profile", type=Path, help="sample borgerdialog with py-spy; collapsed stacks go here"
    )
    parser.add_argument(
        "--count-statements",
        type=Path,
        metavar="DIR",
        help="count borgerdialog's SQL statements and ORM flushes (per update; lists go in DIR)",
    )
    parser.add_argument(
        "--checkout",
        type=Path,
        default=PROJECT,
        help="run borgerdialog from this checkout (e.g. a git worktree of an older commit)",
    )
    arguments = parser.parse_args()
    if not 0 <= arguments.reading <= 60:
        parser.error("--reading: give the seconds a walker reads a question, 0 to 60")
    global PROFILE_DIR, COUNT_DIR, CHECKOUT
    PROFILE_DIR = arguments.profile
    COUNT_DIR = arguments.count_statements
    for folder in (PROFILE_DIR, COUNT_DIR):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    CHECKOUT = arguments.checkout.resolve()
    # The fake logs every connection the bots drop when they stop; that is not news here.
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    for size, default in (QUICK if arguments.quick else FULL).items():
        if getattr(arguments, size) is None:
            setattr(arguments, size, default)
    results: dict[str, Any] = {"latency_ms": arguments.latency * 1000}
    fake = FakeTelegram(auto_chats=True)
    fake.start()
    fake.latency = arguments.latency
    fake.private_burst = 1_000_000.0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="borgerdialog-load-") as scratch:
        try:
            run_parts(arguments, fake, Path(scratch), results)
        finally:
            fake.stop()
    print(f"({time.perf_counter() - started:.0f} s)")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
