"""A broadcast to 5,000 subscribers within Telegram's limits, through a kill -9 and a restart,
while citizens who are chatting get their replies; and the content-plan sheet from the CLI.

The 5,000-subscriber run goes at a paid rate of 500 a second, against a fake whose paid lane
allows as little above that as Telegram's 30 a second allows above the default 29. The default
rate against Telegram's real 30 a second is run with 300 subscribers; the full 5,000 at 29 a
second (three minutes) is the soak test, marked slow (``pytest -m slow``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bot.config import Settings
from scheduler.broadcast import Pacer
from storage.database import create_engine
from storage.models import (
    Consultation,
    OutboxMessage,
    OutboxStatus,
    Participant,
    Participation,
    ParticipationStatus,
    PlannedPost,
    PostState,
)
from tests.botprocess import BotProcess
from tests.citizens import open_now
from tests.cli import borgerdialog, in_process
from tests.conftest import eventually
from tests.fake_telegram import FakeBot, FakeTelegram, TokenBucket

FIRST = 700_000
CHATTING = [800_001, 800_002, 800_003, 800_004, 800_005]
POST = "Borgermøde om den nye friluftspolitik torsdag kl. 19 på rådhuset"
# Telegram's bulk limit is 30 messages a second; the bot's default rate (29) stays just under it.
TELEGRAM_BULK_PER_SECOND = 30
DEFAULT_RATE: float = Settings.model_fields["bulk_messages_per_second"].default
# Paid broadcast lets the bot go faster; the fake's paid lane is then set to the same margin
# above the bot's rate as Telegram's 30 a second is above the default 29.
FAST_RATE = 500.0


@dataclass(frozen=True)
class Broadcast:
    """One run of the broadcast test: how many subscribers, when the chatting citizens write,
    when the sender is killed, and the bulk rate (None: the default, under Telegram's free 30/s).
    """

    subscribers: int
    replies_after: int
    kill_after: int
    rate: float | None = None

    @property
    def blocked(self) -> list[int]:
        """Three subscribers who blocked the bot: the first few, the middle, the last."""
        return [FIRST + 17, FIRST + self.subscribers // 2, FIRST + self.subscribers - 1]

    @property
    def reachable(self) -> int:
        return self.subscribers - len(self.blocked)


def cli_env(settings: Settings) -> dict[str, str]:
    return {"BORGERDIALOG_DATABASE_URL": settings.database_url}


async def seed_subscribers(settings: Settings, workdir: Path, subscribers: int) -> None:
    """Citizens who took part and asked to hear back (written straight to the database)."""
    consultation = workdir / "friluftsliv.yaml"
    consultation.write_text(open_now(), encoding="utf-8")
    result = await asyncio.to_thread(
        in_process,
        "consultation",
        "import",
        str(consultation),
        cwd=workdir,
        env=cli_env(settings),
    )
    assert result.returncode == 0, result.stderr
    now = datetime.now(UTC) - timedelta(days=3)
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            consultation_id = (
                await connection.execute(
                    select(Consultation.id).where(Consultation.slug == "friluftsliv")
                )
            ).scalar_one()
            await connection.execute(
                insert(Participant),
                [
                    {
                        "channel": "telegram",
                        "chat_id": str(FIRST + n),
                        "language": None,
                        "state": {"last_language": "da"},
                        "events_applied": 3,
                        "created_at": now,
                        "last_seen_at": now,
                    }
                    for n in range(subscribers)
                ],
            )
            ids = dict(
                (await connection.execute(select(Participant.chat_id, Participant.id))).all()
            )
            await connection.execute(
                insert(Participation),
                [
                    {
                        "consultation_id": consultation_id,
                        "participant_id": ids[str(FIRST + n)],
                        "pseudonym": f"p-{n:08d}",
                        "number": n + 1,
                        "status": ParticipationStatus.COMPLETED,
                        "pending_selection": [],
                        "hear_back": True,
                        "consent_at": now,
                        "completed_at": now,
                        "started_at": now,
                        "updated_at": now,
                    }
                    for n in range(subscribers)
                ],
            )
    finally:
        await engine.dispose()


async def settled_chats(settings: Settings) -> set[int]:
    """The chats whose post the database holds as sent."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            chats = (
                await connection.execute(
                    select(OutboxMessage.chat_id)
                    .join(PlannedPost, PlannedPost.id == OutboxMessage.post_id)
                    .where(PlannedPost.key == "sheet:moede")
                    .where(OutboxMessage.status == OutboxStatus.SENT)
                )
            ).scalars()
            return {int(chat) for chat in chats}
    finally:
        await engine.dispose()


async def broadcast_through_a_kill(
    run: Broadcast,
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> int:
    """Send the post to every subscriber within the limits, with a kill -9 mid-broadcast and
    citizens chatting meanwhile; check everything; return how many messages were repeated."""
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    await seed_subscribers(settings, tmp_path, run.subscribers)
    subscribers = [FIRST + n for n in range(run.subscribers)]
    fake_bot.open_chats(subscribers)
    for chat in run.blocked:
        fake_bot.block(chat)
    sheet = tmp_path / "plan.csv"
    sheet.write_text(f"id,when,audience,text_da\nmoede,now,everyone,{POST}\n", encoding="utf-8")

    bot = BotProcess(settings, tmp_path)
    bot.env.update(
        {
            "BORGERDIALOG_PLAN_CHECK_SECONDS": "1",
            # A killed sender's messages are taken again after 5 s instead of a minute.
            "BORGERDIALOG_BULK_LEASE_SECONDS": "5",
        }
    )
    if run.rate is not None:
        bot.env["BORGERDIALOG_BULK_MESSAGES_PER_SECOND"] = str(run.rate)
        bot.env["BORGERDIALOG_PAID_BROADCAST"] = "true"
        limit = run.rate * TELEGRAM_BULK_PER_SECOND / DEFAULT_RATE
        fake_bot.paid_bucket = TokenBucket(capacity=limit, per_second=limit)
    bot.start()
    try:
        await bot.wait_healthy()
        imported = await asyncio.to_thread(
            borgerdialog, "plan", "import", str(sheet), cwd=tmp_path, env=cli_env(settings)
        )
        assert imported.returncode == 0, imported.stderr

        def delivered() -> int:
            return len(fake_bot.chats_with(POST))

        async def wait_delivered(count: int, timeout: float) -> None:
            # Counting scans every transcript on the fake's loop: look twice a second, not fifty
            # times, so the test does not slow the fake down for the bot.
            deadline = time.monotonic() + timeout
            while delivered() < count:
                assert time.monotonic() < deadline, f"only {delivered()} of {count} delivered"
                await asyncio.sleep(0.5)

        await wait_delivered(run.replies_after, timeout=60)
        # Citizens who write now are answered now, not after every bulk message.
        for citizen in CHATTING:
            fake_bot.send_message(citizen, "/help")
        await eventually(
            lambda: all(fake_bot.texts(c) for c in CHATTING), timeout=20, what="replies"
        )
        assert delivered() < run.subscribers / 2, "replies waited for the broadcast"

        await wait_delivered(run.kill_after, timeout=120)
        bot.kill()
        killed_at = time.monotonic()
        assert delivered() < run.reachable, "the kill must land mid-broadcast"
        # What the dead sender had sent but not yet recorded as sent: requests it had written
        # may still reach the fake just after, so wait until the count stands still.
        stable, last = 0, -1
        while stable < 3:
            count = delivered()
            stable, last = (stable + 1, last) if count == last else (0, count)
            await asyncio.sleep(0.25)
        got_before_restart = set(fake_bot.chats_with(POST))
        recorded = await settled_chats(settings)
        assert recorded <= got_before_restart, "recorded as sent but never delivered"
        in_flight = got_before_restart - recorded
        bot.start()
        await bot.wait_healthy()
        await wait_delivered(run.reachable, timeout=400)
        status = await asyncio.to_thread(
            borgerdialog, "broadcast", "status", cwd=tmp_path, env=cli_env(settings)
        )
        assert status.returncode == 0, status.stderr
        assert bot.terminate() == 0, bot.logs()
    finally:
        if bot.process is not None and bot.process.poll() is None:
            bot.kill()

    # Everyone once; a repeat only for a message in flight at the kill (sent just before it).
    repeated = set()
    for chat in subscribers:
        got = [m for m in fake_bot.sent(chat) if m.text == POST]
        if chat in run.blocked:
            assert got == []
            continue
        assert got, f"chat {chat} got nothing"
        if len(got) > 1:
            assert len(got) == 2
            assert got[0].sent_at < killed_at < got[1].sent_at, f"chat {chat} got it twice"
            repeated.add(chat)
    # Exactly the messages delivered but not yet recorded when the sender died came again.
    assert repeated == in_flight
    # Never over Telegram's limits: not one 429, for the broadcast or for the replies.
    refused = [entry for entry in fake_bot.requests() if entry[3] == 429]
    assert refused == []
    if run.rate is not None:
        assert fake_bot.paid_messages >= run.reachable, "the faster rate is paid broadcast"
    n, blocked = run.subscribers, len(run.blocked)
    assert (
        f"{n}/{n} done: {n - blocked} delivered, {blocked} unreachable, 0 failed, 0 waiting"
        in status.stdout
    )

    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            post = (
                await connection.execute(
                    select(PlannedPost.id, PlannedPost.state, PlannedPost.recipients).where(
                        PlannedPost.key == "sheet:moede"
                    )
                )
            ).one()
            unreachable = (
                (
                    await connection.execute(
                        select(Participant.chat_id).where(Participant.unreachable_at.is_not(None))
                    )
                )
                .scalars()
                .all()
            )
            statuses = (
                (
                    await connection.execute(
                        select(OutboxMessage.status).where(OutboxMessage.post_id == post.id)
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    assert post.state == PostState.SENT
    assert post.recipients == run.subscribers
    assert sorted(unreachable) == sorted(str(chat) for chat in run.blocked)
    assert statuses.count(OutboxStatus.SENT) == run.reachable
    return len(repeated)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_5000_subscribers_once_each_through_a_kill_while_replies_flow_at_a_paid_rate(
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """The 5,000-subscriber broadcast at a paid rate, with the fake's paid lane at the same
    margin above it as Telegram's 30/s above the default 29/s: the same run in seconds."""
    run = Broadcast(subscribers=5000, replies_after=200, kill_after=1500, rate=FAST_RATE)
    await broadcast_through_a_kill(run, fake_telegram, fake_bot, make_settings, tmp_path)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_300_subscribers_within_telegrams_30_a_second_through_a_kill_while_replies_flow(
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """At the default rate, against Telegram's own 30 a second: never a 429, replies go out
    mid-broadcast, and a kill repeats no more than were in flight."""
    run = Broadcast(subscribers=300, replies_after=20, kill_after=150)
    repeats = await broadcast_through_a_kill(run, fake_telegram, fake_bot, make_settings, tmp_path)
    assert repeats <= 64, f"{repeats} repeats: more than were in flight"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_5000_subscribers_once_each_within_limits_through_a_kill_while_replies_flow(
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """Soak: the whole 5,000-subscriber broadcast at the real 29 a second (about three minutes)."""
    run = Broadcast(subscribers=5000, replies_after=200, kill_after=1500)
    repeats = await broadcast_through_a_kill(run, fake_telegram, fake_bot, make_settings, tmp_path)
    assert repeats <= 64, f"{repeats} repeats: more than were in flight"


def test_plan_import_reports_every_mistake_with_row_and_column_and_imports_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    env = {**cli_env(settings), "BORGERDIALOG_PUBLIC_CHANNEL_ID": "-1001234567890"}
    (tmp_path / "friluftsliv.yaml").write_text(open_now(), encoding="utf-8")
    assert (
        in_process("consultation", "import", "friluftsliv.yaml", cwd=tmp_path, env=env).returncode
        == 0
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone(settings.zone)
    when = tomorrow.strftime("%Y-%m-%d 09:00")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "id;høring;tidspunkt;målgruppe;tekst_da;billede\n"
        f"1;friluftsliv;{when};participants;Godt nyt;\n"
        "2;friluftsliv;2030-03-31 02:30;channel;Om natten;\n"
        f"3;;{when};participants;Uden høring;\n"
        f"4;friluftsliv;{when};segment:district=west;Til vest;\n"
        f"5;friluftsliv;round 7 closes - 1d;channel;Ingen runde 7;\n"
        f"6;friluftsliv;{when};channel;;\n"
        f"7;friluftsliv;{when};channel;Med billede;mangler.png\n"
        "8;friluftsliv;2020-01-01 10:00;channel;For sent;\n",
        encoding="utf-8",
    )
    result = in_process("plan", "import", str(bad), cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    for expected in (
        "bad.csv: row 3, column C (tidspunkt): 2030-03-31 02:30 does not exist in "
        "Europe/Copenhagen",
        "bad.csv: row 4, column D (målgruppe): this audience needs a consultation in its row",
        "bad.csv: row 5, column D (målgruppe): question 'district' has no option 'west' "
        "(it has centre, north, south)",
        "bad.csv: row 6, column C (tidspunkt): the consultation has no round 7",
        "bad.csv: row 7, column E (tekst_da): the da text is empty",
        "bad.csv: row 8, column F (billede): no image file 'mangler.png' next to the sheet",
        "bad.csv: row 9, column C (tidspunkt): 2020-01-01 10:00 has passed",
        "borgerdialog: 7 mistakes; nothing was imported",
    ):
        assert any(expected in line for line in lines), f"{expected!r} not in {lines}"
    planned = in_process("plan", "list", cwd=tmp_path, env=env).stdout
    assert "Godt nyt" not in planned
    # The round's own posts are there from the consultation import.
    assert "(round 1 closes)  to channel, participants  results" in planned

    good = tmp_path / "good.csv"
    good.write_text(
        "id,consultation,when,audience,text_da,text_en\n"
        f"1,friluftsliv,{when},participants,Godt nyt,Good news\n"
        "2,friluftsliv,round 1 closes - 1d,channel,Sidste dag i morgen,\n",
        encoding="utf-8",
    )
    dry = in_process("plan", "import", str(good), "--dry-run", cwd=tmp_path, env=env)
    assert "Would import 2 post(s)" in dry.stdout
    assert "Godt nyt" not in in_process("plan", "list", cwd=tmp_path, env=env).stdout
    imported = in_process("plan", "import", str(good), cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr
    again = in_process("plan", "import", str(good), cwd=tmp_path, env=env)
    assert again.stdout.count("updated") == 2, "importing the same sheet updates, never doubles"
    listing = in_process("plan", "list", cwd=tmp_path, env=env).stdout
    assert f"{when}  to participants  message: Godt nyt" in listing
    assert "(round 1 closes - 1d)  to channel  message: Sidste dag i morgen" in listing
    line = next(line for line in listing.splitlines() if "Godt nyt" in line)
    post_id = line.split()[0].lstrip("#")
    cancelled = in_process("plan", "cancel", post_id, cwd=tmp_path, env=env)
    assert cancelled.stdout.strip() == f"Cancelled post {post_id}."
    twice = in_process("plan", "cancel", post_id, cwd=tmp_path, env=env)
    assert twice.returncode == 2
    assert "only planned posts can be cancelled" in twice.stderr
    assert "cancelled" in in_process("plan", "list", "--all", cwd=tmp_path, env=env).stdout
    # What staff changed at the terminal is in the audit trail, as the dashboard's changes are.
    trail = in_process("moderation", "log", "--format", "jsonl", cwd=tmp_path, env=env).stdout
    entries = [json.loads(line) for line in trail.splitlines()]
    changes = [(e["event"], e["actor"], e["consultation"]) for e in entries]
    assert changes == [
        ("consultation_imported", "staff (command line)", "friluftsliv"),
        ("plan_sheet_imported", "staff (command line)", ""),
        ("plan_sheet_imported", "staff (command line)", ""),
        ("plan_post_cancelled", "staff (command line)", "friluftsliv"),
    ]


async def test_a_late_wake_up_never_puts_more_than_the_rate_into_one_second() -> None:
    # Slots booked ahead, then every task woken at once (as after a stalled event loop): the
    # sends must still spread so that no one second holds more than 29.
    pacer = Pacer(29)
    waits = [pacer.reserve() for _ in range(60)]
    assert waits[-1] > 1.5
    sent: list[float] = []

    async def send_late() -> None:
        await pacer.admit()
        sent.append(time.monotonic())

    await asyncio.gather(*(send_late() for _ in waits))
    sent.sort()
    assert len(sent) == 60
    # Counted over a little more than a second, so that the varying way to the platform
    # cannot put 30 into one second at the other end.
    busiest = max(sum(1 for other in sent if start <= other < start + 1.1) for start in sent)
    assert busiest == 29
