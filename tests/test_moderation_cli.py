"""Moderation without Telegram: the queue and decisions from the command line, the same rules as
the moderator chat (first decision wins, audit entries, the author told, the card edited); and the
statement commands ``ideas approve|hide``.

The commands run in-process (click's CliRunner) in a thread, beside the running bot on the same
database; the bot's redelivery job then sends what the command queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result

from bot.app import BorgerDialog
from bot.cli import main
from scheduler.jobs import redeliver_pending
from storage.database import create_engine
from storage.migrate import _config, head_revision, prepare_schema
from storage.models import Answer, ItemStatus, ModerationItem, ModerationLogEntry, Visibility
from tests.citizens import import_consultation
from tests.cli import no_traceback
from tests.conftest import eventually, model_rows
from tests.fake_telegram import FakeBot, SentMessage
from tests.ideas import ideas_source, statements, uow_of, write_statement
from tests.ideas import join as join_ideas
from tests.moderators import (
    Moderator,
    card_held_by_flood_control,
    consultation_source,
    join,
    new_card,
)

CLI_NAME = "staff (command line)"


# Only the settings a test gives reach the commands; the root logger is put back after.
pytestmark = pytest.mark.usefixtures("clean_cli_environment")


async def cli(app: BorgerDialog, *args: str) -> Result:
    """Run a command against the app's database, in a thread: the app keeps this event loop."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return await asyncio.to_thread(
            CliRunner().invoke,
            main,
            list(args),
            env={"BORGERDIALOG_DATABASE_URL": app.settings.database_url},
        )
    finally:
        # The command points the root logger at its captured stderr, closed once it returns.
        root.handlers[:] = handlers
        root.setLevel(level)


def done(result: Result) -> str:
    """Exit 0 and one line on stdout; return it."""
    no_traceback(result)
    assert result.exit_code == 0, (result.exit_code, result.output)
    (line,) = result.stdout.splitlines()
    return line


def refused(result: Result) -> str:
    """Exit 2, nothing on stdout, and one line of ours on stderr; return it."""
    no_traceback(result)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    # The bot shares this process and may log to stderr meanwhile: only our lines count.
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("borgerdialog:")]
    return line


async def send_queued(app: BorgerDialog) -> None:
    """What the running bot's redelivery job does within a minute: send what waits."""
    assert app.core is not None
    await redeliver_pending(app.core.delivery, ["telegram"])


async def card_delivered(app: BorgerDialog, card: SentMessage) -> None:
    """Wait until the bot has recorded the card's message id (it edits the card by it)."""

    async def recorded() -> bool:
        async with uow_of(app)() as uow:
            items = await uow.moderation.waiting()
            outbox = [await uow.outbox.get(i.card_message_id or 0) for i in items]
        return any(m is not None and m.external_message_id == str(card.message_id) for m in outbox)

    await eventually(recorded, what="the card's delivery recorded")


async def log_entries(app: BorgerDialog) -> list[ModerationLogEntry]:
    return [row[0] for row in await model_rows(app, ModerationLogEntry)]


async def held_answer(app: BorgerDialog, fake_bot: FakeBot, user_id: int, text: str) -> tuple:
    """A citizen's answer held for moderation, and its card in the moderator chat."""
    citizen = await join(fake_bot, user_id)
    moderator = Moderator(fake_bot, 901)
    before = len(moderator.cards())
    await citizen.write(text, new=2)
    card = await new_card(moderator, before)
    await card_delivered(app, card)
    return citizen, moderator, card


# --- ideas approve | hide ----------------------------------------------------------------------


async def test_ideas_approve_shows_a_held_statement_tells_its_author_and_edits_the_card(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, ideas_source(moderation="pre"))
    anna = await join_ideas(fake_bot, 601)
    moderator = Moderator(fake_bot, 901)
    await write_statement(anna, "Lys på stien gennem parken om vinteren")
    await anna.tap("✅ Send")
    card = await new_card(moderator, 0)
    await card_delivered(app, card)
    (held,) = [s for s in await statements(app) if s.origin == "citizen"]
    assert held.visibility == Visibility.HELD

    line = done(await cli(app, "ideas", "approve", "skolevej", str(held.number)))
    assert line.startswith(f"Statement {held.number} of 'skolevej' is shown to citizens")
    assert "tells the author" in line
    (shown,) = [s for s in await statements(app) if s.origin == "citizen"]
    assert shown.visibility == Visibility.VISIBLE
    entry = (await log_entries(app))[-1]
    assert (entry.event, entry.actor, entry.before, entry.after) == (
        "approved",
        CLI_NAME,
        "held",
        "visible",
    )

    await send_queued(app)
    approved = await eventually(
        lambda: [t for t in anna.texts() if t.startswith("✅ Dit udsagn")], what="Anna told"
    )
    assert "er godkendt og vises nu for andre" in approved[0]
    assert f"✅ Godkendt af {CLI_NAME}" in (moderator.card_now(card).text or "")
    assert moderator.card_now(card).buttons == []

    again = refused(await cli(app, "ideas", "approve", "skolevej", str(held.number)))
    assert again == f"borgerdialog: statement {held.number} is already shown"
    missing = refused(await cli(app, "ideas", "hide", "skolevej", "99"))
    assert "'skolevej' has no statement 99" in missing
    assert "no consultation 'nowhere'" in refused(await cli(app, "ideas", "hide", "nowhere", "1"))


async def test_ideas_hide_hides_a_shown_statement_and_its_author_can_write_anew(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, ideas_source())
    anna = await join_ideas(fake_bot, 602)
    await write_statement(anna, "Lys på stien gennem parken om vinteren")
    await anna.tap("✅ Send")
    (written,) = [s for s in await statements(app) if s.origin == "citizen"]
    assert written.visibility == Visibility.VISIBLE

    line = done(await cli(app, "ideas", "hide", "skolevej", str(written.number)))
    assert line.startswith(f"Statement {written.number} of 'skolevej' is hidden")
    (hidden,) = [s for s in await statements(app) if s.origin == "citizen"]
    assert hidden.visibility == Visibility.HIDDEN
    entry = (await log_entries(app))[-1]
    assert (entry.event, entry.actor, entry.before, entry.after) == (
        "hidden",
        CLI_NAME,
        "visible",
        "hidden",
    )

    await send_queued(app)
    told = await eventually(
        lambda: [t for t in anna.texts() if t.startswith("Dit udsagn »Lys på stien")],
        what="Anna told",
    )
    assert "bliver ikke vist" in told[0]
    await anna.tap("✏️ Skriv et nyt udsagn")
    assert "Skriv dit udsagn i én besked" in (anna.last().text or "")

    again = refused(await cli(app, "ideas", "hide", "skolevej", str(written.number)))
    assert again == f"borgerdialog: statement {written.number} is already hidden"
    # Staff's own statements have no author to tell; hiding one says so.
    line = done(await cli(app, "ideas", "hide", "skolevej", "1"))
    assert line.startswith("Statement 1 of 'skolevej' is hidden; nobody is told")


async def test_ideas_decide_tells_the_author_and_goes_in_the_audit_trail(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, ideas_source())
    anna = await join_ideas(fake_bot, 603)
    await write_statement(anna, "Bænke langs stien hver 200 meter")
    await anna.tap("✅ Send")
    (written,) = [s for s in await statements(app) if s.origin == "citizen"]

    line = done(
        await cli(
            app,
            "ideas",
            "decide",
            "skolevej",
            str(written.number),
            "accepted",
            "--reason",
            "Det kommer med i budgettet",
        )
    )
    assert line.startswith(f"Statement {written.number}: accepted.")
    entry = (await log_entries(app))[-1]
    assert (entry.event, entry.actor, entry.consultation, entry.after) == (
        "statement_decided",
        CLI_NAME,
        "skolevej",
        "accepted",
    )
    assert entry.reason == f"statement {written.number}"  # which one, never the reason's text
    await send_queued(app)
    await eventually(
        lambda: any("Det kommer med i budgettet" in t for t in anna.texts()), what="Anna told"
    )


# --- moderation queue --------------------------------------------------------------------------


async def test_the_queue_lists_held_answers_masked_with_their_age(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    assert done(await cli(app, "moderation", "queue")) == "Nothing waits for a decision."
    await held_answer(app, fake_bot, 611, "Ring til mig på 22 33 44 55")
    await held_answer(app, fake_bot, 612, "I er nogle idioter")
    items = [row[0] for row in await model_rows(app, ModerationItem)]

    listed = await cli(app, "moderation", "queue")
    no_traceback(listed)
    assert listed.exit_code == 0
    first, second = listed.stdout.splitlines()
    assert re.fullmatch(
        rf"#{items[0].id} \d+ min waiting · trafik · answer · hold · phone: «Ring til mig på ▒▒▒»",
        first,
    ), first
    assert second.startswith(f"#{items[1].id} ")
    assert "offensive" in second
    assert "22 33 44 55" not in listed.stdout

    as_json = await cli(app, "moderation", "queue", "--format", "jsonl")
    assert as_json.exit_code == 0
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["item"] for r in records] == [items[0].id, items[1].id]
    assert records[0]["text"] == "Ring til mig på ▒▒▒"
    assert records[0]["flags"] == ["phone"]
    assert records[0]["kind"] == "answer"
    assert records[0]["consultation"] == "trafik"
    assert re.fullmatch(r"\d+ min", records[0]["age"])
    assert "22 33 44 55" not in as_json.stdout


# --- moderation approve | hide | rephrase ------------------------------------------------------


async def test_approve_from_the_command_line_then_the_chat_is_told_who_decided_first(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna, moderator, card = await held_answer(app, fake_bot, 621, "Ring til mig på 22 33 44 55")
    (item,) = [row[0] for row in await model_rows(app, ModerationItem)]

    line = done(await cli(app, "moderation", "approve", str(item.id)))
    assert line.startswith(f"Item {item.id} approved and shown; the running bot tells the author")
    (answer,) = [row[0] for row in await model_rows(app, Answer)]
    assert answer.visibility == Visibility.VISIBLE
    entry = (await log_entries(app))[-1]
    assert (entry.item_id, entry.event, entry.actor, entry.after) == (
        item.id,
        "approved",
        CLI_NAME,
        "visible",
    )
    assert "Nothing waits" in done(await cli(app, "moderation", "queue"))

    # A moderator pressing the card before the bot has redrawn it is told who decided first;
    # nothing happens twice.
    late = await moderator.press(card, "🙈 Skjul")
    assert late["show_alert"] is True
    assert late["text"].startswith(f"✅ Godkendt af {CLI_NAME}")
    (answer,) = [row[0] for row in await model_rows(app, Answer)]
    assert answer.visibility == Visibility.VISIBLE
    assert [e.event for e in await log_entries(app)] == ["screened", "approved"]

    await send_queued(app)
    (approved,) = await eventually(
        lambda: [t for t in anna.texts() if t.startswith("✅ Dit svar")], what="the author told"
    )
    assert "»Hvad er din bedste idé?«" in approved
    decided = moderator.card_now(card)
    assert decided.buttons == []
    assert f"✅ Godkendt af {CLI_NAME}" in (decided.text or "")
    assert "22 33 44 55" not in (decided.text or "")


async def test_a_card_still_waiting_when_decided_elsewhere_goes_out_decided_without_buttons(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """The moderators' chat is rate-limited, so the card waits; meanwhile staff approve the
    item from the command line. The card then goes out once, as decided: nobody is shown
    buttons for an item already decided."""
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 625)
    moderator = Moderator(fake_bot, 901)
    await card_held_by_flood_control(fake_bot, anna, "Ring til mig på 22 33 44 55", 4)
    (item,) = [row[0] for row in await model_rows(app, ModerationItem)]
    line = done(await cli(app, "moderation", "approve", str(item.id)))
    assert line.startswith(f"Item {item.id} approved and shown")
    card = await new_card(moderator, 0)
    assert card.buttons == []
    assert f"✅ Godkendt af {CLI_NAME}" in (card.text or "")
    assert card.edits == 0, "it went out decided, not redrawn afterwards"


async def test_a_decision_from_the_chat_first_refuses_the_command_line_with_who_and_when(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna, moderator, card = await held_answer(app, fake_bot, 622, "Ring til mig på 22 33 44 55")
    (item,) = [row[0] for row in await model_rows(app, ModerationItem)]
    await moderator.press(card, "🙈 Skjul")
    await eventually(lambda: "bliver ikke brugt" in (anna.last().text or ""), what="author told")

    line = refused(await cli(app, "moderation", "approve", str(item.id)))
    assert re.fullmatch(
        rf"borgerdialog: item {item.id} was already hidden by Borger 901 at "
        r"\d{4}-\d\d-\d\d \d\d:\d\d \(Europe/Copenhagen\)",
        line,
    ), line
    (answer,) = [row[0] for row in await model_rows(app, Answer)]
    assert answer.visibility == Visibility.HIDDEN
    assert [e.event for e in await log_entries(app)] == ["screened", "hidden"]


async def test_hide_with_a_reason_and_rephrase_tell_the_author_in_danish(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna, moderator, card = await held_answer(app, fake_bot, 623, "I er nogle idioter på rådhuset")
    bo, _, bo_card = await held_answer(app, fake_bot, 624, "Ring til mig på 22 33 44 55")
    anna_item, bo_item = [row[0] for row in await model_rows(app, ModerationItem)]

    line = done(await cli(app, "moderation", "hide", str(anna_item.id), "--reason", "offensive"))
    assert line.startswith(f"Item {anna_item.id} hidden (offensive);")
    line = done(await cli(app, "moderation", "rephrase", str(bo_item.id)))
    assert line.startswith(f"Item {bo_item.id} returned to its author to rephrase;")
    await send_queued(app)

    await eventually(lambda: "bliver ikke brugt" in (anna.last().text or ""), what="Anna told")
    assert "sproget kan krænke andre" in (anna.last().text or "")
    assert [b["text"] for b in anna.last().buttons] == ["✏️ Skriv et nyt svar"]
    await eventually(lambda: "med andre ord" in (bo.last().text or ""), what="Bo asked")
    assert [b["text"] for b in bo.last().buttons] == ["✏️ Skriv et nyt svar"]
    assert "(Krænkende sprog)" in (moderator.card_now(card).text or "")
    assert f"✏️ {CLI_NAME} bad om omformulering" in (moderator.card_now(bo_card).text or "")

    answers = {
        str(a.value)[:4]: a.visibility for a in (r[0] for r in await model_rows(app, Answer))
    }
    assert answers == {"I er": Visibility.HIDDEN, "Ring": Visibility.HELD}
    entries = [(e.event, e.actor, e.reason) for e in await log_entries(app)][2:]
    assert entries == [("hidden", CLI_NAME, "offensive"), ("rephrase", CLI_NAME, None)]
    statuses = [row[0].status for row in await model_rows(app, ModerationItem)]
    assert statuses == [ItemStatus.HIDDEN, ItemStatus.REPHRASE]


async def test_an_unknown_item_or_a_misplaced_reason_is_one_line(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    await held_answer(app, fake_bot, 625, "Ring til mig på 22 33 44 55")
    (item,) = [row[0] for row in await model_rows(app, ModerationItem)]
    for number in ("999", "0", "99999999999999999999"):
        line = refused(await cli(app, "moderation", "hide", number))
        assert line == (
            f"borgerdialog: no moderation item {number} (see 'borgerdialog moderation queue')"
        )
    line = refused(await cli(app, "moderation", "approve", str(item.id), "--reason", "spam"))
    assert "--reason goes with 'hide' only" in line
    (still,) = [row[0] for row in await model_rows(app, ModerationItem)]
    assert still.status == ItemStatus.WAITING
    assert [e.event for e in await log_entries(app)] == ["screened"]


# --- the operator log when the schema changes --------------------------------------------------


async def test_the_log_says_a_new_schema_was_created_and_an_old_one_migrated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    head = head_revision()
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.sqlite3'}"
    engine = create_engine(url)
    try:
        with caplog.at_level(logging.INFO, logger="storage"):
            await prepare_schema(engine, url)
    finally:
        await engine.dispose()
    assert f"created the database schema (revision {head})" in caplog.messages
    assert not [m for m in caplog.messages if "None" in m]

    caplog.clear()
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    try:
        older = ScriptDirectory.from_config(_config()).get_revision(head).down_revision
        assert isinstance(older, str)
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_config(sync), older))
        with caplog.at_level(logging.INFO, logger="storage"):
            await prepare_schema(engine, url)
    finally:
        await engine.dispose()
    assert f"database migrated from {older} to {head}" in caplog.messages
