"""A kill -9 in the middle of a WhatsApp or Messenger burst loses no message, applies none twice,
keeps order.

Many citizens write at once through signed webhook deliveries to ``borgerdialog run`` in a child
process; it is killed -9 mid-burst and started again. Meta delivers again every delivery that got
no 2xx (the fakes do: the one on the wire at the kill, and those refused while the bot starts);
the inbox takes each message id (WhatsApp's wamid, Messenger's mid) once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import Settings
from storage.database import create_engine
from storage.models import InboxEvent, InboxStatus, Participant
from tests.botprocess import BotProcess, citizen_script, reply_kind
from tests.conftest import eventually
from tests.fake_graph import FakeGraph, WaMessage
from tests.fake_messenger import FakeMessenger, MsMessage
from tests.postgres import free_port

# How long after the kill a reply sent before it may still reach the fake.
IN_FLIGHT_SLACK = 0.5
CITIZENS = 100
MESSAGES_EACH = 5
KILL_AFTER_TAKEN_IN = 200
# Meta's webhook deliveries come over many connections at once under load.
WEBHOOK_CONNECTIONS = 16


@dataclass(frozen=True)
class Platform:
    """One of Meta's platforms: its fake, and how it names the citizen with number ``n``."""

    channel: str
    fake: type[FakeGraph | FakeMessenger]
    citizen: Callable[[int], str]


PLATFORMS = [
    # A phone number.
    Platform("whatsapp", FakeGraph, lambda number: f"45300{number:05d}"),
    # A page-scoped id.
    Platform("messenger", FakeMessenger, lambda number: f"71000000{number:08d}"),
]


@pytest.fixture
def platform(request: pytest.FixtureRequest) -> Platform:
    return request.param  # type: ignore[no-any-return]


# Each platform once, on one database each: the inbox that makes a kill safe is the channels'
# shared one, and tests/test_crash_safety.py kills Telegram's burst on both databases. What is a
# platform's own (its message ids, Meta's redeliveries, the webhook's answers) is the same on
# either; four runs of 10-15 s each would add nothing the two do not show.
PLATFORM_DATABASES = pytest.mark.parametrize(
    ("platform", "database_url"),
    [(PLATFORMS[0], "postgresql"), (PLATFORMS[1], "sqlite")],
    ids=["whatsapp-postgresql", "messenger-sqlite"],
    indirect=True,
)


@pytest.fixture
def burst_fake(platform: Platform) -> Iterator[FakeGraph | FakeMessenger]:
    server = platform.fake()
    server.webhook_connections = WEBHOOK_CONNECTIONS
    # A simulated 50 ms round trip keeps many sends in flight when the kill lands.
    server.latency = 0.05
    # Meta goes on delivering for days; here long enough for the bot to start again.
    server.redeliveries = 600
    server.start()
    yield server
    server.stop()


@PLATFORM_DATABASES
async def test_kill_9_mid_burst_loses_nothing_and_applies_nothing_twice(
    platform: Platform,
    burst_fake: FakeGraph | FakeMessenger,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    fake = burst_fake
    citizen = platform.citizen
    settings = make_settings(**fake.settings(free_port()))
    bot = BotProcess(settings, tmp_path)
    bot.start()
    try:
        await bot.wait_healthy()
        burst = [
            (citizen(number), citizen_script(number)[position][0])
            for position in range(MESSAGES_EACH)
            for number in range(CITIZENS)
        ]
        ids = fake.send_many(burst)
        written: dict[str, list[str]] = {}
        for (sender, _text), message_id in zip(burst, ids, strict=True):
            written.setdefault(sender, []).append(message_id)

        def replies_sent() -> int:
            return fake.call(lambda: len(fake.sent))

        def taken_in() -> int:
            return fake.call(
                lambda: sum(1 for d in fake.deliveries if d.answers and d.answers[-1] == 200)
            )

        # Mid-burst on both sides: deliveries still coming in, replies going out.
        await eventually(
            lambda: taken_in() >= KILL_AFTER_TAKEN_IN and replies_sent() > 0,
            timeout=60,
            what=f"{KILL_AFTER_TAKEN_IN} deliveries taken in and replies sent before the kill",
        )
        bot.kill()
        killed_at = time.monotonic()
        answered_before_kill = replies_sent()
        taken_before_kill = taken_in()
        assert taken_before_kill < len(burst), "the kill must land mid-burst"
        assert answered_before_kill < len(burst), "the kill must land mid-burst"

        bot.start()
        await bot.wait_healthy()

        def all_answered() -> bool:
            return all(
                len({reply_kind(m.text) for m in fake.to(citizen(n))}) == MESSAGES_EACH
                for n in range(CITIZENS)
            )

        await eventually(
            all_answered, timeout=120, what="every message answered after restart", interval=0.25
        )

        def all_delivered() -> bool:
            return fake.call(
                lambda: all(d.done is not None and d.done.is_set() for d in fake.deliveries)
            )

        await eventually(all_delivered, what="every delivery answered")
        assert bot.terminate() == 0, bot.logs()
    finally:
        if bot.process is not None and bot.process.poll() is None:
            bot.kill()

    # Every delivery was taken in at last (a 2xx), and some were delivered again.
    deliveries = fake.call(lambda: list(fake.deliveries))
    assert all(d.answers and d.answers[-1] == 200 for d in deliveries)
    redelivered = sum(1 for d in deliveries if len(d.answers) > 1)
    assert redelivered > 0, "the deliveries on the wire at the kill come again"
    assert fake.refused == []

    # Stored and applied exactly once, in the order written within each chat.
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            events = (await connection.execute(select(InboxEvent))).all()
            participants = (await connection.execute(select(Participant))).all()
    finally:
        await engine.dispose()
    assert len(events) == CITIZENS * MESSAGES_EACH
    assert {event.channel for event in events} == {platform.channel}
    assert {event.status for event in events} == {InboxStatus.DONE}
    sequence = {event.external_id: event.applied_sequence for event in events}
    for sender, in_written_order in written.items():
        assert [sequence[m] for m in in_written_order] == list(range(1, MESSAGES_EACH + 1)), (
            f"chat {sender[-3:]}"
        )
    assert {p.events_applied for p in participants} == {MESSAGES_EACH}
    assert len(participants) == CITIZENS

    # Answered in order; a reply repeats only if it was in flight at the kill.
    repeats = 0
    for number in range(CITIZENS):
        sent: Sequence[WaMessage | MsMessage] = fake.to(citizen(number))
        kinds: list[str] = []
        for index, message in enumerate(sent):
            kind = reply_kind(message.text)
            if kinds and kinds[-1] == kind:
                previous = sent[index - 1]
                # Sent before the kill; bytes already on the wire may reach the fake a moment
                # after the kill was recorded (seen: 0.6 ms), so "in flight" has a little slack.
                assert previous.sent_at < killed_at + IN_FLIGHT_SLACK < message.sent_at, (
                    f"citizen {number}: a reply repeated that was not in flight at the kill"
                )
                repeats += 1
                continue
            kinds.append(kind)
        assert kinds == [phrase for _m, phrase in citizen_script(number)], f"citizen {number}"
    # Per chat at most one reply is in flight at a time (delivery is per chat, in order).
    assert repeats <= CITIZENS
    print(
        f"\nkilled after {taken_before_kill} messages taken in and {answered_before_kill} "
        f"replies sent; {redelivered} deliveries redelivered; {repeats} replies repeated"
    )
