"""Three ``borgerdialog run`` processes on one PostgreSQL, behind a round-robin proxy, with the fake
Bot API delivering webhooks as Telegram does (issue 17).

- A burst of 1,000 messages from 200 citizens, one process killed -9 in the middle of it: every
  message is answered, each chat's replies come in order, and a reply repeats only if it was in
  flight at the kill. Every update is applied once, in its chat's order.
- The leader killed -9: another process takes the lead and sends the next due post, to the
  channel and to each of 100 subscribers once, without a 429.
- A planned post to 2,000 subscribers with three processes running: each subscriber gets it
  once, never more than 30 within any one second by the fake's clock (the soak test, about 70 s
  at the real rate: ``-m slow``).

Nothing here asserts how long something took, except the 30 s the issue gives a new leader.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, insert, select

from bot.channels.telegram.webhook import PATH
from bot.config import Settings
from storage.database import create_engine
from storage.models import (
    InboxEvent,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    Participant,
    PlannedPost,
    PostState,
)
from tests.botprocess import SCRIPT, BotProcess, citizen_script, reply_kind
from tests.conftest import eventually
from tests.fake_telegram import FakeBot, FakeTelegram, delete_webhook
from tests.postgres import free_port
from tests.roundrobin import RoundRobinProxy
from tests.test_broadcast import FIRST, seed_subscribers

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

PROCESSES = 3
SECRET = "several_Processes-17"
# Set alike in every process, as an operator would (the web chat's cookies, staff pseudonyms).
WEB_SECRET = "several-processes-web-secret-0123456789abcdef"
CITIZENS = 200
MESSAGES_EACH = 5
# The kill lands while Telegram is still delivering the burst (so deliveries to the killed
# process fail over to the others, or come again) and replies are going out.
KILL_AFTER_DELIVERIES = 400
CHANNEL = -100_170_017
# Telegram's bulk limit; the bot's default rate (29) stays just under it.
TELEGRAM_BULK_PER_SECOND = 30
# How long a new leader may take to run a due post (the issue allows 30 s; followers try every 5).
TAKEOVER_SECONDS = 30


@dataclass
class Cluster:
    """Three bot processes on one database behind the proxy, as an operator deploys them."""

    settings: Settings
    proxy: RoundRobinProxy
    processes: list[BotProcess] = field(default_factory=list)

    async def roles(self) -> list[str]:
        """Each process's role from its /healthz ('gone' for a process that is not running)."""
        found = []
        async with aiohttp.ClientSession() as session:
            for process in self.processes:
                if process.process is None or process.process.poll() is not None:
                    found.append("gone")
                    continue
                try:
                    async with session.get(f"http://127.0.0.1:{process.port}/healthz") as answer:
                        found.append(str((await answer.json())["role"]))
                except aiohttp.ClientError:
                    found.append("unreachable")
        return found

    def logs(self) -> str:
        return "\n".join(
            f"--- process {n} (port {p.port}) ---\n{p.logs()}" for n, p in enumerate(self.processes)
        )


@pytest.fixture
def start_cluster(
    fake_bot: FakeBot,
    fake_telegram: FakeTelegram,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> Iterator[Callable[..., Awaitable[Cluster]]]:
    """Start the proxy and three processes in webhook mode, the webhook pointing at the proxy."""
    clusters: list[Cluster] = []

    async def start(**env: str) -> Cluster:
        ports = [free_port() for _ in range(PROCESSES)]
        proxy = RoundRobinProxy(ports)
        proxy.start()
        settings = make_settings(
            telegram_token=fake_bot.token,
            telegram_api_url=fake_telegram.api_url,
            telegram_webhook_url=f"{proxy.url}{PATH}",
            telegram_webhook_secret=SECRET,
        )
        cluster = Cluster(settings, proxy)
        clusters.append(cluster)
        for n, port in enumerate(ports):
            workdir = tmp_path / f"process-{n}"
            workdir.mkdir()
            process = BotProcess(settings.model_copy(update={"http_port": port}), workdir)
            process.env.update({"BORGERDIALOG_WEB_SECRET": WEB_SECRET, **env})
            cluster.processes.append(process)
        # One after the other, so the first one started leads.
        for process in cluster.processes:
            process.start()
            await process.wait_healthy()
        return cluster

    yield start
    # Telegram would go on delivering to the address; the fake stops (the bot is this test's).
    fake_telegram.call(lambda: delete_webhook(fake_bot, {}))
    for cluster in clusters:
        for process in cluster.processes:
            if process.process is not None and process.process.poll() is None:
                process.kill()
        cluster.proxy.stop()


def every(seconds: float, check: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    """A check for ``eventually`` that looks every few tenths of a second, not fifty times a
    second: reading 200 transcripts from the fake must not slow the fake down for the bots."""

    async def paced() -> Any:
        await asyncio.sleep(seconds)
        return check()

    return paced


def kind_of(text: str) -> str:
    """The script's phrase a reply answers, or the reply itself if it answers none (an apology)."""
    try:
        return reply_kind(text)
    except AssertionError:
        return f"unexpected: {text[:60]}"


def answered_chats(fake_bot: FakeBot) -> dict[int, set[str]]:
    """Which of the script's replies each citizen has had."""
    phrases = {phrase for _message, phrase in SCRIPT}
    return {
        1000 + c: {kind_of(t) for t in fake_bot.texts(1000 + c)} & phrases for c in range(CITIZENS)
    }


async def what_is_unfinished(settings: Settings) -> str:
    """The inbox events and outbox replies not finished, for a failure message."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            events = (
                await connection.execute(
                    select(InboxEvent.chat_id, InboxEvent.external_id, InboxEvent.status)
                    .where(InboxEvent.status != InboxStatus.DONE)
                    .order_by(InboxEvent.id)
                )
            ).all()
            replies = (
                await connection.execute(
                    select(OutboxMessage.chat_id, OutboxMessage.status, func.count())
                    .where(OutboxMessage.status != OutboxStatus.SENT)
                    .group_by(OutboxMessage.chat_id, OutboxMessage.status)
                )
            ).all()
    finally:
        await engine.dispose()
    return (
        f"{len(events)} inbox events not done (chat, update, status), the first: {events[:20]}; "
        f"outbox rows not sent (chat, status, count): {replies[:20]}"
    )


async def wait_while_answers_come(fake_bot: FakeBot, quiet_seconds: float) -> int:
    """Wait until every message is answered, or no new answer came for ``quiet_seconds``;
    return how many of the script's replies arrived."""
    loop = asyncio.get_running_loop()
    last, last_change = -1, loop.time()
    while True:
        count = sum(len(kinds) for kinds in answered_chats(fake_bot).values())
        if count == CITIZENS * MESSAGES_EACH:
            return count
        if count != last:
            last, last_change = count, loop.time()
        elif loop.time() - last_change > quiet_seconds:
            return count
        await asyncio.sleep(0.5)


def reply_problems(fake_bot: FakeBot, killed_at: float, latency: float) -> tuple[list[str], int]:
    """Every chat whose replies are missing, out of order or repeated though not in flight at
    the kill, named with what it got; and how many replies were repeated across the kill."""
    problems: list[str] = []
    repeats = 0
    for citizen in range(CITIZENS):
        chat = 1000 + citizen
        expected = [phrase for _message, phrase in citizen_script(citizen)]
        sent = fake_bot.sent(chat)
        kinds: list[str] = []
        for index, message in enumerate(sent):
            kind = kind_of(message.text or "")
            if kinds and kinds[-1] == kind:
                previous = sent[index - 1]
                # The first copy reached the fake before the kill (or, sent just before it,
                # within the fake's own half round trip after); the repeat after the kill.
                if not previous.sent_at < killed_at + latency < message.sent_at:
                    problems.append(
                        f"chat {chat}: reply {kind!r} repeated, not across the kill "
                        f"(at {previous.sent_at - killed_at:+.3f} s and "
                        f"{message.sent_at - killed_at:+.3f} s from the kill)"
                    )
                repeats += 1
                continue
            kinds.append(kind)
        if kinds != expected:
            missing = [k for k in expected if k not in kinds]
            what = f"missing {missing}" if missing else "out of order"
            problems.append(f"chat {chat}: {what}; expected {expected}, got {kinds}")
    return problems, repeats


async def test_a_process_killed_mid_burst_loses_nothing_and_keeps_each_chats_order(
    start_cluster: Callable[..., Awaitable[Cluster]],
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
) -> None:
    # A simulated 50 ms round trip keeps many requests in flight when the kill lands.
    fake_telegram.latency = 0.05
    cluster = await start_cluster()
    settings = cluster.settings
    roles = await cluster.roles()
    assert sorted(roles) == ["follower", "follower", "leader"]
    # A follower: the one that leads goes in the test below.
    victim = cluster.processes[roles.index("follower")]
    burst = [
        (1000 + citizen, citizen_script(citizen)[position][0])
        for position in range(MESSAGES_EACH)
        for citizen in range(CITIZENS)
    ]
    fake_bot.send_many(burst)

    def replies_sent() -> int:
        return sum(1 for entry in fake_bot.requests("sendMessage") if entry[3] == 200)

    def delivered() -> int:
        return sum(cluster.proxy.counts().values())

    await eventually(
        lambda: delivered() >= KILL_AFTER_DELIVERIES,
        timeout=120,
        what=f"{KILL_AFTER_DELIVERIES} deliveries before the kill",
    )
    victim.kill()
    killed_at = time.monotonic()
    answered_before_kill = replies_sent()
    assert answered_before_kill < CITIZENS * MESSAGES_EACH, "the kill must land mid-burst"
    took = cluster.proxy.counts()
    assert all(took.get(process.port) for process in cluster.processes), (
        f"every process took deliveries before the kill: {took}"
    )
    assert sum(took.values()) < CITIZENS * MESSAGES_EACH, "the kill must land mid-delivery"

    # Whatever the killed process left, the others finish once it has waited long enough to
    # count as left (seconds): wait while answers keep coming, and a minute past the last one.
    answered = await wait_while_answers_come(fake_bot, quiet_seconds=60)
    await eventually(
        every(0.2, lambda: fake_bot.unconfirmed() == 0), 30, what="every update confirmed"
    )
    problems, repeats = reply_problems(fake_bot, killed_at, fake_telegram.latency / 2)
    if answered < CITIZENS * MESSAGES_EACH or problems:
        pytest.fail(
            f"{CITIZENS * MESSAGES_EACH - answered} messages unanswered, {len(problems)} chats "
            f"wrong after the kill ({answered_before_kill} replies sent before it):\n"
            + "\n".join(problems[:40])
            + f"\n{await what_is_unfinished(settings)}\n{cluster.logs()}"
        )
    for process in cluster.processes:
        if process is not victim:
            assert process.terminate() == 0, cluster.logs()

    # Stored and applied exactly once, in order within each chat.
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            events = (await connection.execute(select(InboxEvent))).all()
            participants = (await connection.execute(select(Participant))).all()
    finally:
        await engine.dispose()
    assert len(events) == CITIZENS * MESSAGES_EACH
    assert {event.status for event in events} == {InboxStatus.DONE}
    by_chat: dict[str, list[tuple[int, int]]] = {}
    for event in events:
        assert event.chat_id is not None
        assert event.applied_sequence is not None
        by_chat.setdefault(event.chat_id, []).append(
            (int(event.external_id), event.applied_sequence)
        )
    disordered = {
        chat: [sequence for _update, sequence in sorted(applied)]
        for chat, applied in by_chat.items()
        if [sequence for _update, sequence in sorted(applied)] != list(range(1, MESSAGES_EACH + 1))
    }
    assert not disordered, (
        "chats whose events were not applied once each in update order (sequences in update "
        f"order): {dict(list(disordered.items())[:10])}"
    )
    assert {p.events_applied for p in participants} == {MESSAGES_EACH}
    assert len(participants) == CITIZENS

    # A chat has one reply on the way at a time (a chat's replies go out in order, one by one),
    # so no more repeat than chats were being answered at the kill.
    assert repeats <= CITIZENS
    print(
        f"\nkilled a follower after {answered_before_kill} replies; {repeats} in-flight replies "
        f"repeated; deliveries answered per port before the kill {took}, after "
        f"{cluster.proxy.counts()} (0: the proxy's 502s); not answered "
        f"{cluster.proxy.failures()}"
    )


async def test_when_the_leader_is_killed_another_process_sends_the_next_due_post(
    start_cluster: Callable[..., Awaitable[Cluster]],
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    subscribers = 100
    await seed_subscribers(make_settings(), tmp_path, subscribers)
    fake_bot.open_chats([FIRST + n for n in range(subscribers)])
    fake_bot.open_channel(CHANNEL)
    cluster = await start_cluster(
        BORGERDIALOG_PLAN_CHECK_SECONDS="1", BORGERDIALOG_PUBLIC_CHANNEL_ID=str(CHANNEL)
    )
    roles = await cluster.roles()
    assert sorted(roles) == ["follower", "follower", "leader"]
    leader = cluster.processes[roles.index("leader")]
    leader.kill()
    killed_at = time.monotonic()

    # Planned after the kill, due at once: no process leads when it falls due.
    text = "Borgermøde om friluftspolitikken torsdag kl. 19"
    engine = create_engine(cluster.settings.database_url)
    try:
        async with engine.begin() as connection:
            now = datetime.now(UTC)
            await connection.execute(
                insert(PlannedPost).values(
                    kind="message",
                    texts={"da": text},
                    audience={"channel": True, "chats": [], "subscribers": "all"},
                    occurrence=1,
                    due_at=now,
                    state=PostState.PLANNED,
                    recipients=0,
                    created_by="test",
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        await engine.dispose()

    await eventually(
        every(0.1, lambda: fake_bot.texts(CHANNEL) == [text]),
        timeout=TAKEOVER_SECONDS,
        what="another process to send the post due after the leader died",
    )
    took_over = time.monotonic() - killed_at
    roles = await cluster.roles()
    assert sorted(roles) == ["follower", "gone", "leader"], roles

    await eventually(
        every(0.5, lambda: len(fake_bot.chats_with(text)) == subscribers + 1),
        timeout=120,
        what="the post to reach every subscriber",
    )
    for process in cluster.processes:
        if process is not leader:
            assert process.terminate() == 0, cluster.logs()
    # Each once, and nothing refused for flood control. (The strict count of every second is
    # the soak test's: a few hundred messages say little about it.)
    peak = check_broadcast(fake_bot, [FIRST + n for n in range(subscribers)], text)
    assert fake_bot.texts(CHANNEL) == [text]
    print(f"\nthe post went out {took_over:.1f} s after the kill; at most {peak} in any second")


def check_broadcast(fake_bot: FakeBot, subscribers: list[int], text: str) -> int:
    """Each subscriber got the text once and Telegram refused nothing (the fake refuses what
    passes its 30 a second); return the most the fake received within any one second."""
    times: list[float] = []
    wrong: dict[int, int] = {}
    for chat in subscribers:
        got = [m.sent_at for m in fake_bot.sent(chat) if m.text == text]
        if len(got) != 1:
            wrong[chat] = len(got)
        times += got
    assert not wrong, f"subscribers who did not get the post once (chat: copies): {wrong}"
    refused = [entry for entry in fake_bot.requests() if entry[3] == 429]
    assert refused == [], f"{len(refused)} requests refused by flood control"
    return most_in_one_second(times)


def most_in_one_second(times: list[float]) -> int:
    """The most of these moments within any one second (a window sliding over them)."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.slow
async def test_a_planned_post_reaches_2000_subscribers_once_each_within_30_a_second(
    start_cluster: Callable[..., Awaitable[Cluster]],
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """Soak: three processes, one of them sends, at the real 29 a second (about 70 s)."""
    subscribers = 2000
    await seed_subscribers(make_settings(), tmp_path, subscribers)
    chats = [FIRST + n for n in range(subscribers)]
    fake_bot.open_chats(chats)
    cluster = await start_cluster(BORGERDIALOG_PLAN_CHECK_SECONDS="1")
    text = "Sidste uge til at sige din mening om friluftspolitikken"
    engine = create_engine(cluster.settings.database_url)
    try:
        async with engine.begin() as connection:
            now = datetime.now(UTC)
            await connection.execute(
                insert(PlannedPost).values(
                    kind="message",
                    texts={"da": text},
                    audience={"channel": False, "chats": [], "subscribers": "all"},
                    occurrence=1,
                    due_at=now,
                    state=PostState.PLANNED,
                    recipients=0,
                    created_by="test",
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        await engine.dispose()

    def sent() -> int:
        return sum(1 for entry in fake_bot.requests("sendMessage") if entry[3] == 200)

    # Looked at every two seconds: the fake's clock is what is measured, so the test keeps out
    # of its way.
    await eventually(
        every(2.0, lambda: sent() >= subscribers),
        timeout=300,
        what="the post to reach every subscriber",
    )
    await asyncio.sleep(2)  # anything sent twice would arrive meanwhile
    for process in cluster.processes:
        assert process.terminate() == 0, cluster.logs()
    peak = check_broadcast(fake_bot, chats, text)
    print(f"\nat most {peak} messages in any one second")
    assert peak <= TELEGRAM_BULK_PER_SECOND, f"{peak} messages within one second"
