"""A broadcast to 5,000 subscribers within Telegram's limits, through a kill -9 and a restart,
while citizens who are chatting get their replies; and the content-plan sheet from the CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bot.config import Settings
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
from tests.cli import borgerdialog
from tests.conftest import eventually
from tests.fake_telegram import FakeBot, FakeTelegram

SUBSCRIBERS = 5000
FIRST = 700_000
BLOCKED = [FIRST + 17, FIRST + 2500, FIRST + 4999]
CHATTING = [800_001, 800_002, 800_003, 800_004, 800_005]
KILL_AFTER = 1500
POST = "Borgermøde om den nye friluftspolitik torsdag kl. 19 på rådhuset"


def cli_env(settings: Settings) -> dict[str, str]:
    return {"BORGERDIALOG_DATABASE_URL": settings.database_url}


async def seed_subscribers(settings: Settings, workdir: Path) -> None:
    """5,000 citizens who took part and asked to hear back (written straight to the database)."""
    consultation = workdir / "friluftsliv.yaml"
    consultation.write_text(open_now(), encoding="utf-8")
    result = await asyncio.to_thread(
        borgerdialog,
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
                    for n in range(SUBSCRIBERS)
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
                    for n in range(SUBSCRIBERS)
                ],
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_5000_subscribers_once_each_within_limits_through_a_kill_while_replies_flow(
    fake_telegram: FakeTelegram,
    fake_bot: FakeBot,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    await seed_subscribers(settings, tmp_path)
    subscribers = [FIRST + n for n in range(SUBSCRIBERS)]
    fake_bot.open_chats(subscribers)
    for chat in BLOCKED:
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

        await wait_delivered(200, timeout=60)
        # Citizens who write now are answered now, not after 5,000 bulk messages.
        for citizen in CHATTING:
            fake_bot.send_message(citizen, "/help")
        await eventually(
            lambda: all(fake_bot.texts(c) for c in CHATTING), timeout=20, what="replies"
        )
        assert delivered() < SUBSCRIBERS / 2, "replies waited for the broadcast"

        await wait_delivered(KILL_AFTER, timeout=120)
        bot.kill()
        killed_at = time.monotonic()
        assert delivered() < SUBSCRIBERS - len(BLOCKED), "the kill must land mid-broadcast"
        bot.start()
        await bot.wait_healthy()
        await wait_delivered(SUBSCRIBERS - len(BLOCKED), timeout=400)
        status = await asyncio.to_thread(
            borgerdialog, "broadcast", "status", cwd=tmp_path, env=cli_env(settings)
        )
        assert status.returncode == 0, status.stderr
        assert bot.terminate() == 0, bot.logs()
    finally:
        if bot.process is not None and bot.process.poll() is None:
            bot.kill()

    # Everyone once; a repeat only for a message in flight at the kill (sent just before it).
    repeats = 0
    for chat in subscribers:
        got = [m for m in fake_bot.sent(chat) if m.text == POST]
        if chat in BLOCKED:
            assert got == []
            continue
        assert got, f"chat {chat} got nothing"
        if len(got) > 1:
            assert len(got) == 2
            assert got[0].sent_at < killed_at < got[1].sent_at, f"chat {chat} got it twice"
            repeats += 1
    assert repeats <= 64, f"{repeats} repeats: more than were in flight"
    # Never over Telegram's limits: not one 429, for the broadcast or for the replies.
    refused = [entry for entry in fake_bot.requests() if entry[3] == 429]
    assert refused == []
    assert "5000/5000 done: 4997 delivered, 3 unreachable, 0 failed, 0 waiting" in status.stdout

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
    assert post.recipients == SUBSCRIBERS
    assert sorted(unreachable) == sorted(str(chat) for chat in BLOCKED)
    assert statuses.count(OutboxStatus.SENT) == SUBSCRIBERS - len(BLOCKED)


def test_plan_import_reports_every_mistake_with_row_and_column_and_imports_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    env = {**cli_env(settings), "BORGERDIALOG_PUBLIC_CHANNEL_ID": "-1001234567890"}
    (tmp_path / "friluftsliv.yaml").write_text(open_now(), encoding="utf-8")
    assert (
        borgerdialog("consultation", "import", "friluftsliv.yaml", cwd=tmp_path, env=env).returncode
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
    result = borgerdialog("plan", "import", str(bad), cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    for expected in (
        "bad.csv: row 3, column C (when): 2030-03-31 02:30 does not exist in Europe/Copenhagen",
        "bad.csv: row 4, column D (audience): this audience needs a consultation in its row",
        "bad.csv: row 5, column D (audience): question 'district' has no option 'west' "
        "(it has centre, north, south)",
        "bad.csv: row 6, column C (when): the consultation has no round 7",
        "bad.csv: row 7, column E (text_da): the da text is empty",
        "bad.csv: row 8, column F (image): no image file 'mangler.png' next to the sheet",
        "bad.csv: row 9, column C (when): 2020-01-01 10:00 has passed",
        "borgerdialog: 7 mistake(s); nothing was imported",
    ):
        assert any(expected in line for line in lines), f"{expected!r} not in {lines}"
    planned = borgerdialog("plan", "list", cwd=tmp_path, env=env).stdout
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
    dry = borgerdialog("plan", "import", str(good), "--dry-run", cwd=tmp_path, env=env)
    assert "Would import 2 post(s)" in dry.stdout
    assert "Godt nyt" not in borgerdialog("plan", "list", cwd=tmp_path, env=env).stdout
    imported = borgerdialog("plan", "import", str(good), cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr
    again = borgerdialog("plan", "import", str(good), cwd=tmp_path, env=env)
    assert again.stdout.count("updated") == 2, "importing the same sheet updates, never doubles"
    listing = borgerdialog("plan", "list", cwd=tmp_path, env=env).stdout
    assert f"{when}  to participants  message: Godt nyt" in listing
    assert "(round 1 closes - 1d)  to channel  message: Sidste dag i morgen" in listing
    line = next(line for line in listing.splitlines() if "Godt nyt" in line)
    post_id = line.split()[0].lstrip("#")
    cancelled = borgerdialog("plan", "cancel", post_id, cwd=tmp_path, env=env)
    assert cancelled.stdout.strip() == f"Cancelled post {post_id}."
    twice = borgerdialog("plan", "cancel", post_id, cwd=tmp_path, env=env)
    assert twice.returncode == 2
    assert "only planned posts can be cancelled" in twice.stderr
    assert "cancelled" in borgerdialog("plan", "list", "--all", cwd=tmp_path, env=env).stdout
