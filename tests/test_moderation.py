"""Moderation end to end: screening on arrival, the moderator chat, the author hearing back."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import BorgerDialog
from bot.consultations.export import build_table
from handlers.context import FlowContext, OrganisationInfo
from handlers.events import InboundEvent, Outcome
from handlers.moderation.intake import report
from handlers.screening.rules import HOLD, Screener, WordLists
from scheduler.jobs import send_moderation_digest
from storage.database import create_session_factory
from storage.models import (
    Answer,
    ItemStatus,
    ModerationItem,
    ModerationLogEntry,
    Statement,
    StatementOrigin,
    Visibility,
)
from storage.uow import UnitOfWorkFactory
from tests.citizens import import_consultation
from tests.cli import in_process
from tests.conftest import MODERATORS, eventually, model_rows
from tests.fake_telegram import FakeBot
from tests.moderators import (
    Moderator,
    card_held_by_flood_control,
    consultation_source,
    join,
    new_card,
)

ROOT = Path(__file__).resolve().parent.parent


async def exported_idea(app: BorgerDialog) -> str:
    assert app.engine is not None
    async with UnitOfWorkFactory(create_session_factory(app.engine))() as uow:
        table = await build_table(uow, "trafik")
    assert table is not None
    (row,) = table.rows
    return str(row["idea"])


async def stored_answers(app: BorgerDialog) -> list[Answer]:
    return [row[0] for row in await model_rows(app, Answer)]


async def test_personal_data_is_held_masked_and_the_first_moderator_decides(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 301)
    anne, bo = Moderator(fake_bot, 901), Moderator(fake_bot, 902)

    held, _next_question = await anna.write(
        "Lars Nielsen på 22 33 44 55 ved, hvor der mangler en fodgængerovergang", new=2
    )
    assert "En moderator læser dit svar" in (held.text or "")
    assert "personoplysninger" in (held.text or "")
    (answer,) = await stored_answers(app)
    assert answer.visibility == Visibility.HELD

    # Until a moderator approves, the text stays out of exports too.
    assert await exported_idea(app) == "(held for moderation)"

    card = await new_card(anne, 0)
    text = card.text or ""
    assert "Trafik ved skolen" in text
    assert "Spørgsmål: Hvad er din bedste idé?" in text
    # Personal data never reaches the group unmasked; the pseudonym, not the citizen, is shown.
    assert "22 33 44 55" not in text
    assert "Lars Nielsen" not in text
    assert "«▒▒▒ på ▒▒▒ ved, hvor der mangler en fodgængerovergang»" in text
    assert "• Telefonnummer" in text
    assert "• Navn på en person" in text
    assert "holdt tilbage til godkendelse" in text
    assert "301" not in text
    labels = [b["text"] for b in card.buttons]
    assert labels == [
        "✅ Godkend",
        "🙈 Skjul",
        "💬 Skjul og forklar",
        "✏️ Bed om omformulering",
        "👁 Vis skjulte oplysninger",
        "⛔ Bloker deltager",
    ]

    # "Show" reveals the masked data to the moderator who asked, in an alert, and is logged.
    shown = await anne.press(card, "👁 Vis skjulte oplysninger")
    assert shown["text"] == "Lars Nielsen · 22 33 44 55"
    assert shown["show_alert"] is True

    # Two moderators press Approve at the same moment: the first decides, the second is told.
    approve = next(b["callback_data"] for b in card.buttons if b["text"] == "✅ Godkend")
    answers = len(fake_bot.callback_answers)
    fake_bot.press_button(anne.id, card.message_id, approve, chat_id=MODERATORS)
    fake_bot.press_button(bo.id, card.message_id, approve, chat_id=MODERATORS)
    await eventually(lambda: len(fake_bot.callback_answers) >= answers + 2, what="both presses")
    first, second = fake_bot.callback_answers[answers : answers + 2]
    assert first["text"] == "Godkendt"
    assert second["show_alert"] is True
    assert second["text"].startswith("✅ Godkendt af Borger 901")

    decided = anne.card_now(card)
    assert decided.buttons == []
    assert "✅ Godkendt af Borger 901" in (decided.text or "")
    (approved,) = await eventually(
        lambda: [t for t in anna.texts() if t.startswith("✅ Dit svar")], what="the author told"
    )
    assert "»Hvad er din bedste idé?«" in approved
    (answer,) = await stored_answers(app)
    assert answer.visibility == Visibility.VISIBLE
    assert (await exported_idea(app)).startswith("Lars Nielsen på 22 33 44 55")

    log = [row[0] for row in await model_rows(app, ModerationLogEntry)]
    assert [entry.event for entry in log] == ["screened", "revealed", "approved"]
    assert log[0].flags == ["name", "phone"]
    assert log[0].actor == "screening"
    assert log[2].actor.startswith("moderator ")
    assert {entry.author for entry in log} == {log[0].author}
    assert log[0].author.startswith("p-")


async def test_a_flood_wait_in_the_moderators_chat_does_not_hold_up_the_citizen(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """Telegram makes the moderators' chat wait 5 s before Anna's card may go out. Her next
    answer is taken and answered meanwhile; the card follows once the wait is over. (Before,
    her next answer waited for the card: her chat's turn lasted until it had gone out.)"""
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 310)
    moderator = Moderator(fake_bot, 901)
    await card_held_by_flood_control(fake_bot, anna, "Ring til mig på 22 33 44 55", 5)

    thanks, *_ = await anna.write("Fordi børnene cykler der hver dag", new=2)
    assert moderator.cards() == [], "her answer came while the card still waited"
    assert (thanks.text or "").startswith("Tak for dine svar til »Trafik ved skolen«!")
    card = await new_card(moderator, 0)
    assert "22 33 44 55" not in (card.text or "")


async def test_someone_outside_the_moderator_chat_cannot_decide(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 302)
    await anna.write("I er nogle idioter på rådhuset", new=2)
    outsider = Moderator(fake_bot, 903)
    card = await new_card(outsider, 0)
    # 903 was in the group once (an old member) but has left.
    fake_bot.set_member(MODERATORS, 903, "left")
    refused = await outsider.press(card, "✅ Godkend")
    assert refused["text"] == "Kun medlemmer af moderatorgruppen kan træffe afgørelser her."
    assert outsider.card_now(card).buttons == card.buttons
    (item,) = [row[0] for row in await model_rows(app, ModerationItem)]
    assert item.status == ItemStatus.WAITING
    # A forged payload from a member about an item that does not exist changes nothing either.
    stale = await Moderator(fake_bot, 901).press_data(card, "m:a:999", forge=True)
    assert stale["show_alert"] is True


async def test_hidden_with_a_reason_and_the_author_writes_it_anew(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 303)
    anne = Moderator(fake_bot, 901)
    await anna.write("Idiotkommune, byg nu bare den sti", new=2)
    card = await new_card(anne, 0)

    await anne.press(card, "💬 Skjul og forklar")
    await eventually(
        lambda: "Krænkende sprog" in [b["text"] for b in anne.card_now(card).buttons],
        what="the reason templates",
    )
    await anne.press(card, "Krænkende sprog")
    await eventually(lambda: anne.card_now(card).buttons == [], what="the card decided")
    assert "🙈 Skjult af Borger 901" in (anne.card_now(card).text or "")
    assert "(Krænkende sprog)" in (anne.card_now(card).text or "")

    await eventually(lambda: "bliver ikke brugt" in (anna.last().text or ""), what="author told")
    hidden = anna.last()
    assert "sproget kan krænke andre" in (hidden.text or "")
    (answer,) = await stored_answers(app)
    assert answer.visibility == Visibility.HIDDEN

    (question,) = await anna.tap("✏️ Skriv et nyt svar")
    assert "Hvad er din bedste idé?" in (question.text or "")
    await anna.write("Byg stien langs åen, så børnene slipper for den store vej")
    answers = await stored_answers(app)
    idea = next(a for a in answers if str(a.value).startswith("Byg stien"))
    assert idea.visibility == Visibility.VISIBLE
    await eventually(
        lambda: "Forfatteren har skrevet en ny tekst" in (anne.card_now(card).text or ""),
        what="the card tells of the rewrite",
    )
    events = [row[0].event for row in await model_rows(app, ModerationLogEntry)]
    assert events == ["screened", "hidden", "resubmitted"]


async def test_a_rephrase_request_reaches_the_author_in_english(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    john = await join(fake_bot, 304, language="en")
    anne = Moderator(fake_bot, 901)
    (held, _) = await john.write("Call me on +44 7911 123456 about the crossing", new=2)
    assert "A moderator reads your answer" in (held.text or "")
    card = await new_card(anne, 0)
    # Moderators read Danish (the default language) whatever the author writes in.
    assert "Spørgsmål: Hvad er din bedste idé?" in (card.text or "")
    await anne.press(card, "✏️ Bed om omformulering")
    await eventually(lambda: "in other words" in (john.last().text or ""), what="author asked")
    assert [b["text"] for b in john.last().buttons] == ["✏️ Write a new answer"]
    (answer,) = await stored_answers(app)
    assert answer.visibility == Visibility.HELD


async def test_a_blocked_participant_can_no_longer_contribute_but_keeps_their_data_rights(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 305)
    anne = Moderator(fake_bot, 901)
    # A threat is hidden at once, before any moderator sees it.
    await anna.write("Jeg ved hvor du bor, borgmester, og jeg slår dig ihjel", new=2)
    (answer,) = await stored_answers(app)
    assert answer.visibility == Visibility.HIDDEN
    card = await new_card(anne, 0)
    assert "skjult med det samme" in (card.text or "")
    # Two threats in the text; the card gives the reason once.
    assert (card.text or "").count("• Trussel om vold eller skade") == 1

    await anne.press(card, "⛔ Bloker deltager")
    await eventually(
        lambda: "⛔ Ja, bloker" in [b["text"] for b in anne.card_now(card).buttons],
        what="the block confirmation",
    )
    await anne.press(card, "⛔ Ja, bloker")
    await eventually(lambda: "blokeret dig" in (anna.last().text or ""), what="author told")
    assert "/minedata" in (anna.last().text or "")

    (refusal,) = await anna.write("Flere cykelstier")
    assert (refusal.text or "").startswith("Du er blokeret i denne dialog")
    (refusal,) = await anna.write("/start trafik")
    assert (refusal.text or "").startswith("Du er blokeret i denne dialog")
    mydata = await anna.write("/mydata", new=2)
    assert [m.kind for m in mydata] == ["text", "document"]
    assert len(await stored_answers(app)) == 1, "the refused texts were not stored"


async def test_the_queue_and_the_digest_of_items_waiting_too_long(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source("moderation: {spam: hold}"))
    anne = Moderator(fake_bot, 901)
    for user_id, text in ((306, "Køb billigt på www.cheap-shades.ru"), (307, "Ring 22 11 33 44")):
        citizen = await join(fake_bot, user_id)
        await citizen.write(text, new=2)
    await eventually(lambda: len(anne.cards()) == 2, what="two cards")

    before = len(fake_bot.sent(MODERATORS))
    fake_bot.send_message(anne.id, "/queue", chat_id=MODERATORS, chat_type="supergroup")
    await eventually(lambda: len(fake_bot.sent(MODERATORS)) == before + 3, what="the queue")
    head, first, second = fake_bot.sent(MODERATORS)[before:]
    assert (head.text or "").startswith("2 bidrag venter")
    assert "cheap-shades" in (first.text or "")
    assert "▒▒▒" in (second.text or "")

    assert app.uow is not None
    assert app.core is not None
    later = datetime.now(UTC) + timedelta(hours=2)
    sent = await send_moderation_digest(
        app.uow, lambda: later, app.core.delivery, app.core.moderation, app.core.texts
    )
    assert sent
    await eventually(
        lambda: (fake_bot.sent(MODERATORS)[-1].text or "").startswith("⏰ 2 bidrag venter"),
        what="the digest",
    )
    again = await send_moderation_digest(
        app.uow, lambda: later, app.core.delivery, app.core.moderation, app.core.texts
    )
    assert not again, "a digest is not repeated before the items have waited that long again"


async def test_an_item_whose_author_erased_everything_no_longer_waits(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """After /glem the held answer is gone: its item leaves the queue (and the reminders), is
    closed as withdrawn by its author, and the audit trail says so."""
    await import_consultation(app, consultation_source())
    anne = Moderator(fake_bot, 902)
    citizen = await join(fake_bot, 308)
    await citizen.write("Ring 22 11 33 44", new=2)
    await eventually(lambda: len(anne.cards()) == 1, what="the card")
    await citizen.write("/glem")
    await citizen.tap("Ja, slet", new=0)
    await eventually(
        lambda: (citizen.last().text or "").startswith("Dine oplysninger og svar er slettet."),
        what="erased",
    )

    async def closed() -> list[ModerationItem]:
        items = [row[0] for row in await model_rows(app, ModerationItem)]
        return [item for item in items if item.status == ItemStatus.RESUBMITTED]

    (item,) = await eventually(closed, what="the item closed")
    assert item.decided_by == item.pseudonym
    events = [row[0].event for row in await model_rows(app, ModerationLogEntry)]
    assert events == ["screened", "withdrawn"]


async def test_consultation_policy_decides_what_is_shown_at_once(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(
        app, consultation_source("moderation: {offensive: review, personal_data: allow}")
    )
    anna = await join(fake_bot, 308)
    anne = Moderator(fake_bot, 901)
    # Reviewed afterwards: in use at once, and the citizen is not told it waits.
    (next_question,) = await anna.write("Det er noget lort med den vej")
    assert (next_question.text or "").startswith("2/2")
    card = await new_card(anne, 0)
    assert "vist med det samme, gennemses bagefter" in (card.text or "")
    # Personal data is held even when the consultation says allow.
    held, _summary, _hear_back = await anna.write("Ring til mig på 22 33 44 55", new=3)
    assert "En moderator læser dit svar" in (held.text or "")
    visibility = {str(a.value)[:5]: a.visibility for a in await stored_answers(app)}
    assert visibility == {"Det e": Visibility.VISIBLE, "Ring ": Visibility.HELD}


async def test_two_processes_deciding_at_once_decide_once(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 309)
    await anna.write("I er nogle idioter", new=2)
    (item,) = [row[0] for row in await model_rows(app, ModerationItem)]
    assert app.engine is not None
    factory = UnitOfWorkFactory(create_session_factory(app.engine))

    async def decide(status: str) -> bool:
        async with factory() as uow:
            won = await uow.moderation.decide(item.id, status, by=status, at=datetime.now(UTC))
            await uow.commit()
            return won

    results = await asyncio.gather(decide(ItemStatus.APPROVED), decide(ItemStatus.HIDDEN))
    assert sorted(results) == [False, True]


def run_cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_screen_reads_a_csv_column_and_writes_json_lines(tmp_path: Path) -> None:
    comments = tmp_path / "facebook.csv"
    comments.write_text(
        "author;comment\n"
        "a;Super idé med cykelstien\n"
        "b;Ring til mig på 22 33 44 55\n"
        "c;I er nogle idioter\n"
        "d;Køb billige solbriller på www.cheap-shades.ru\n"
        "e;Køb billige solbriller på www.cheap-shades.ru\n",
        encoding="utf-8",
    )
    env = {"PATH": "/usr/bin:/bin", "BORGERDIALOG_DATA_DIR": str(tmp_path)}
    done = run_cli("screen", str(comments), "--column", "comment", env=env)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in results][:2] == [
        "Super idé med cykelstien",
        "Ring til mig på 22 33 44 55",
    ]
    assert results[0]["flags"] == []
    assert results[0]["action"] == "allow"
    assert results[1]["flags"] == [
        {"kind": "phone", "reason": "Telefonnummer", "start": 16, "end": 27}
    ]
    assert results[1]["action"] == HOLD
    assert [f["kind"] for f in results[2]["flags"]] == ["offensive"]
    assert [f["kind"] for f in results[3]["flags"]] == ["link"]
    assert sorted(f["kind"] for f in results[4]["flags"]) == ["link", "repeated"]
    assert set(results[0]) == {"text", "language", "flags", "action"}

    # The rest in-process (the first call went through the real entry point).
    settings = {"BORGERDIALOG_DATA_DIR": str(tmp_path)}
    english = in_process(
        "screen",
        "--language",
        "en",
        stdin='{"text": "Call 22 33 44 55"}\n',
        cwd=tmp_path,
        env=settings,
    )
    assert json.loads(english.stdout)["flags"][0]["reason"] == "Phone number"

    missing = in_process("screen", str(comments), "--column", "tekst", cwd=tmp_path, env=settings)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "borgerdialog: the CSV has no column 'tekst' (columns: author, comment)"
    )
    bad = in_process("screen", stdin='{"body": "x"}\n', cwd=tmp_path, env=settings)
    assert bad.returncode == 2
    assert "line 1" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_the_audit_log_exports_decisions_without_text_or_identities(
    app: BorgerDialog, fake_bot: FakeBot, tmp_path: Path
) -> None:
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 310)
    anne = Moderator(fake_bot, 901)
    await anna.write("Ring til mig på 22 33 44 55", new=2)
    card = await new_card(anne, 0)
    await anne.press(card, "🙈 Skjul")
    await eventually(lambda: "bliver ikke brugt" in (anna.last().text or ""), what="author told")

    env = {"PATH": "/usr/bin:/bin", "BORGERDIALOG_DATABASE_URL": app.settings.database_url}
    # In a thread: the app shares this event loop, and a blocked loop would hold whatever
    # SQLite write it is in the middle of for as long as the command runs.
    done = await asyncio.to_thread(run_cli, "moderation", "log", env=env)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [row["event"] for row in rows] == ["screened", "hidden"]
    assert rows[0]["flags"] == "phone"
    assert rows[1]["before"] == "held"
    assert rows[1]["after"] == "hidden"
    assert rows[1]["actor"].startswith("moderator ")
    assert rows[0]["author"].startswith("p-")
    for secret in ("22 33 44 55", "Ring til", "Borger"):
        assert secret not in done.stdout
    # The rest in-process (the first call went through the real entry point).
    settings = {"BORGERDIALOG_DATABASE_URL": app.settings.database_url}
    since = await asyncio.to_thread(
        in_process,
        *("moderation", "log", "--since", "2999-01-01", "--format", "jsonl"),
        cwd=tmp_path,
        env=settings,
    )
    assert since.returncode == 0
    assert since.stdout == ""
    # A date before anything was logged (year 1 would not exist in UTC): the whole log.
    everything = await asyncio.to_thread(
        in_process,
        *("moderation", "log", "--since", "0001-01-01", "--format", "jsonl"),
        cwd=tmp_path,
        env=settings,
    )
    assert everything.returncode == 0, everything.stderr
    assert len(everything.stdout.splitlines()) == 2
    bad = await asyncio.to_thread(
        in_process, "moderation", "log", "--since", "yesterday", cwd=tmp_path, env=settings
    )
    assert bad.returncode == 2


async def test_enough_citizens_reporting_a_statement_hold_it_for_review(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    """Reports come from the voting cards (ideas issue); here the moderation side of them."""
    await import_consultation(app, consultation_source())
    citizens = [await join(fake_bot, user_id) for user_id in (311, 312, 313, 314)]
    await citizens[0].write("Lad os plante frugttræer langs den nye cykelsti")
    assert app.core is not None
    assert app.engine is not None
    factory = UnitOfWorkFactory(create_session_factory(app.engine))
    outcomes: list[tuple[str, Outcome]] = []

    async def report_as(
        user_id: int, reason: str = "offensive", statement_id: int | None = None
    ) -> str:
        async with factory() as uow:
            participant = await uow.participants.get("telegram", str(user_id))
            assert participant is not None
            consultation = await uow.consultations.by_slug("trafik")
            assert consultation is not None
            reporter = await uow.participations.find(consultation.id, participant.id)
            (answer,) = [
                a for a in await uow.participations.answers_of_consultation(consultation.id)
            ]
            assert reporter is not None
            ctx = FlowContext(
                event=InboundEvent(channel="telegram", chat_id=str(user_id)),
                participant=participant,
                uow=uow,
                t=app.core.texts("da"),
                now=datetime.now(UTC),
                organisation=OrganisationInfo("Kommunen", "dpo@kommune.example", 30),
                zone=app.settings.zone,
                detect_language=lambda _text: None,
                screener=Screener(WordLists.load(), lambda _text: None),
                moderation=app.core.moderation,
                texts_in=app.core.texts,
            )
            outcome = Outcome()
            statement = await uow.ideas.statement(statement_id) if statement_id else None
            contribution = statement or answer
            result = await report(ctx, outcome, consultation, reporter, contribution, reason)
            await uow.commit()
        outcomes.append((result, outcome))
        return result

    assert await report_as(311) == "own"
    assert await report_as(312) == "counted"
    assert await report_as(312, "spam") == "again"
    assert await report_as(313) == "counted"
    (answer,) = await stored_answers(app)
    assert answer.visibility == Visibility.VISIBLE, "two reports of three hold nothing"
    assert await report_as(314, "spam") == "held"
    (answer,) = await stored_answers(app)
    assert answer.visibility == Visibility.HELD
    (item,) = [row[0] for row in await model_rows(app, ModerationItem)]
    assert (item.status, item.action, item.reports) == (ItemStatus.WAITING, "reported", 3)
    ((address, card),) = outcomes[-1][1].elsewhere
    assert address.chat_id == str(MODERATORS)
    assert "Anmeldt af 3 borgere" in card.text
    assert "holdt tilbage, fordi borgere har anmeldt det" in card.text
    events = [row[0].event for row in await model_rows(app, ModerationLogEntry)]
    assert events == ["reported", "reported", "reported", "held_by_reports"]

    # A statement the staff seeded has no citizen author: the trail says staff, not anonymised.
    async with factory() as uow:
        consultation = await uow.consultations.by_slug("trafik")
        assert consultation is not None
        seeded = await uow.ideas.add_statement(
            Statement(
                consultation_id=consultation.id,
                number=99,
                origin=StatementOrigin.STAFF,
                text={"da": "Flere cykelstier til skolen"},
                language="da",
                created_at=datetime.now(UTC),
            )
        )
        await uow.commit()
    assert await report_as(312, statement_id=seeded.id) == "counted"
    entries = [row[0] for row in await model_rows(app, ModerationLogEntry)]
    assert (entries[-1].event, entries[-1].author) == ("reported", "staff")
