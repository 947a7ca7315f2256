"""The moderation queue in the dashboard: the same queue and decisions as the moderator chat.

Citizens write in Telegram (the fake), screening holds their texts, and a moderator decides in
the browser: masked personal data, reveals in the audit trail, the author told, the card in the
moderator chat redrawn, the first decision winning against a moderator in Telegram.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import BorgerDialog
from storage.models import Answer, ItemStatus, ModerationItem, ModerationLogEntry, Visibility
from tests.axe import assert_accessible
from tests.citizens import Citizen, import_consultation
from tests.conftest import NestedUnitsOfWork, eventually, model_rows
from tests.dashboard import (
    BROWSER_DATABASE,
    PASSWORD,
    ROLE_EMAILS,
    add_staff,
    csrf_of,
    logged_in,
    post_form,
)
from tests.fake_telegram import FakeBot, SentMessage
from tests.moderators import Moderator, consultation_source, join

QUEUE = "/admin/moderation"
# Telegram ids as long as real ones: a short number could turn up in a token by chance.
ANNA, BO, CARL, DITTE = 7_310_552_901, 7_310_552_902, 7_310_552_903, 7_310_552_904
PHONE, EMAIL, CPR = "22 33 44 55", "jens.hansen@example.dk", "010190-1234"
PERSONAL = f"Ring til mig på {PHONE} eller skriv til {EMAIL}, mit cpr er {CPR}, om stien"
APPROVED = "✅ Dit svar på »Hvad er din bedste idé?«"
HIDDEN = "bliver ikke brugt"
REPHRASE = "med andre ord"

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard-moderation.png"


async def held(fake_bot: FakeBot, user_id: int, text: str) -> Citizen:
    """A citizen who joined the consultation and wrote a text that screening holds."""
    citizen = await join(fake_bot, user_id)
    first, _next_question = await citizen.write(text, new=2)
    assert "En moderator læser dit svar" in (first.text or ""), first.text
    return citizen


async def items(app: BorgerDialog) -> list[ModerationItem]:
    return [row[0] for row in await model_rows(app, ModerationItem)]


async def trail(app: BorgerDialog) -> list[ModerationLogEntry]:
    return [row[0] for row in await model_rows(app, ModerationLogEntry)]


def card_of(moderator: Moderator, item_id: int) -> SentMessage:
    """The item's card in the moderator chat, as it looks now."""
    return next(
        c for c in moderator.cards() if (c.text or "").startswith(f"🛡 Til moderation #{item_id} ")
    )


async def page(session: aiohttp.ClientSession, path: str = QUEUE) -> str:
    async with session.get(path) as response:
        assert response.status == 200, response.status
        return await response.text()


async def decide(
    session: aiohttp.ClientSession, item_id: int, **data: str
) -> aiohttp.ClientResponse:
    return await post_form(session, QUEUE, f"{QUEUE}/{item_id}/decide", data)


def outcomes(citizen: Citizen) -> list[str]:
    """The messages telling the citizen a moderator's decision."""
    return [t for t in citizen.texts() if t.startswith(APPROVED) or HIDDEN in t or REPHRASE in t]


async def test_the_queue_is_oldest_first_masked_and_a_reveal_is_in_the_audit_trail(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    await held(fake_bot, ANNA, PERSONAL)
    await held(fake_bot, BO, "Idiotkommune, byg nu bare den sti")
    first, second = await items(app)
    # The oldest came in two hours and five minutes ago (the app's clock is the real one).
    assert app.uow is not None
    async with app.uow() as uow:
        oldest = await uow.moderation.get(first.id)
        assert oldest is not None
        oldest.created_at = app.clock() - timedelta(hours=2, minutes=5, seconds=10)
        await uow.commit()

    async with logged_in(app, "moderator") as session:
        html = await page(session)
        # Oldest first, with what the card shows: consultation, question, flags, screening.
        assert html.index(f"#{first.id} · Trafik ved skolen") < html.index(f"#{second.id} ·")
        assert "2 bidrag venter på en afgørelse." in html
        assert "Spørgsmål: Hvad er din bedste idé?" in html
        assert "Telefonnummer" in html
        assert "E-mailadresse" in html
        assert "Ligner et CPR-nummer" in html
        assert "Krænkende eller groft sprog" in html
        assert "holdt tilbage til godkendelse" in html
        assert "Ring til mig på ▒▒▒ eller skriv til ▒▒▒, mit cpr er ▒▒▒, om stien" in html
        # The flag says why it looks like a CPR number without telling the date it holds.
        for secret in (PHONE, EMAIL, CPR, "01.01.1990", "1990", str(ANNA), str(BO)):
            assert secret not in html
        assert f"Deltager: {first.pseudonym}" in html
        # Only an item with masked data offers to reveal it.
        assert html.count('class="reveal"') == 1

        reveal = await post_form(session, QUEUE, f"{QUEUE}/{first.id}/reveal", {})
        revealed = await reveal.text()
        assert reveal.status == 200
        assert PERSONAL in revealed
        assert str(ANNA) not in revealed
        (entry,) = [e for e in await trail(app) if e.event == "moderation_reveal"]
        assert entry.item_id == first.id
        assert entry.actor.startswith("moderator ")
        assert ROLE_EMAILS["moderator"] not in entry.actor
        assert entry.author == first.pseudonym
        # The next page is masked again: a reveal is for the one answer that asked for it.
        again = await page(session)
        assert PHONE not in again
        assert EMAIL not in again

        overview = await page(session, "/admin")
        assert "Moderationskø" in overview
        assert "2 bidrag venter på en afgørelse." in overview
        assert "Det ældste har ventet 2 t. 5 min." in overview
        assert "har ventet 2 t. 5 min." in html

    async with logged_in(app, "moderator", language="en") as session:
        english = await page(session)
        assert "Moderation queue" in english
        assert "2 contributions wait for a decision." in english
        assert "Question: What is your best idea?" in english
        assert "Show the masked data" in english


async def test_staff_may_not_open_the_queue_and_a_forged_form_changes_nothing(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    # Refusals (404, 409) show the queue: never from inside the refused unit of work.
    watch = NestedUnitsOfWork(app.engine)
    await import_consultation(app, consultation_source())
    anna = await held(fake_bot, ANNA, "Idiotkommune, byg nu bare den sti")
    (item,) = await items(app)

    async with logged_in(app, "staff") as staff:
        async with staff.get(QUEUE) as refused:
            assert refused.status == 403
            assert "Ikke for din rolle" in await refused.text()
        overview = await page(staff, "/admin")
        assert "Moderationskø" not in overview
        async with staff.get("/admin") as any_page:
            token = csrf_of(await any_page.text())
        async with staff.post(
            f"{QUEUE}/{item.id}/decide", data={"decision": "approve", "csrf": token}
        ) as refused:
            assert refused.status == 403

    async with logged_in(app, "moderator") as session:
        for token in ("0" * 64, ""):
            async with session.post(
                f"{QUEUE}/{item.id}/decide",
                data={"decision": "approve", "csrf": token},
                allow_redirects=False,
            ) as forged:
                assert forged.status == 403
        async with session.post(
            f"{QUEUE}/{item.id}/reveal", data={"csrf": "0" * 64}, allow_redirects=False
        ) as forged:
            assert forged.status == 403
        # Mistakes get a polite answer in the page, and nothing is decided either.
        unknown = await decide(session, item.id, decision="publish")
        assert unknown.status == 400
        assert "Den afgørelse kunne vi ikke læse" in await unknown.text()
        odd_reason = await decide(session, item.id, decision="hide", reason="because")
        assert odd_reason.status == 400
        unconfirmed = await decide(session, item.id, decision="block")
        assert unconfirmed.status == 400
        assert "Sæt kryds" in await unconfirmed.text()
        missing = await decide(session, 999_999, decision="approve")
        assert missing.status == 404
        assert "Det bidrag findes ikke" in await missing.text()

    (still,) = await items(app)
    assert still.status == ItemStatus.WAITING
    assert [e.event for e in await trail(app) if e.item_id == item.id] == ["screened"]
    assert outcomes(anna) == []
    assert not watch.nested, watch.nested


async def test_decisions_reach_the_author_and_the_card_in_the_moderator_chat(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna = await held(fake_bot, ANNA, PERSONAL)
    bo = await held(fake_bot, BO, "Idiotkommune, byg nu bare den sti")
    carl = await held(fake_bot, CARL, "I er nogle idioter på rådhuset")
    ditte = await held(fake_bot, DITTE, "Idioter, allesammen på rådhuset")
    approved, hidden, rephrase, blocked = await items(app)
    anne = Moderator(fake_bot, 901)
    await eventually(lambda: len(anne.cards()) == 4, what="four cards")

    async with logged_in(app, "moderator") as session:
        answer = await decide(session, approved.id, decision="approve")
        assert answer.status == 303
        assert answer.headers["Location"] == f"{QUEUE}?decided={approved.id}#queue"
        after = await page(session, answer.headers["Location"])
        assert re.search(rf"#{approved.id}: ✅ Godkendt af moderator [0-9a-f]{{10}} ", after)
        assert f'id="item-{approved.id}"' not in after
        assert "3 bidrag venter" in after

        assert (await decide(session, hidden.id, decision="hide", reason="offensive")).status == 303
        assert (await decide(session, rephrase.id, decision="rephrase")).status == 303
        assert (await decide(session, blocked.id, decision="block", confirm="yes")).status == 303
        last = await page(session)
        assert "Der er ingen bidrag at tage stilling til lige nu." in last
        for citizen in (ANNA, BO, CARL, DITTE):
            assert str(citizen) not in last

    # Each author hears it as from the moderator chat, in their chat.
    (told,) = await eventually(lambda: outcomes(anna), what="the approval told")
    assert "er godkendt og bliver brugt" in told
    (told,) = await eventually(lambda: outcomes(bo), what="the hiding told")
    assert "sproget kan krænke andre" in told
    assert [b["text"] for b in bo.last().buttons] == ["✏️ Skriv et nyt svar"]
    await eventually(lambda: outcomes(carl), what="the rephrase request told")
    await eventually(
        lambda: any("har blokeret dig" in t for t in ditte.texts()), what="the block told"
    )

    # The cards in the moderator chat show the decisions, by pseudonym, with no buttons left.
    expected = {
        approved.id: "✅ Godkendt af moderator ",
        hidden.id: "🙈 Skjult af moderator ",
        rephrase.id: "✏️ moderator ",
        blocked.id: "⛔ Skjult og deltageren blokeret af moderator ",
    }
    for item_id, line in expected.items():
        await eventually(
            lambda item_id=item_id, line=line: (
                line in (card_of(anne, item_id).text or "") and card_of(anne, item_id).buttons == []
            ),
            what=f"card {item_id} decided",
        )
    assert "(dashboard)" in (card_of(anne, approved.id).text or "")
    assert "(Krænkende sprog)" in (card_of(anne, hidden.id).text or "")

    # Pressing a button on a card the dashboard decided: told so, nothing happens twice.
    late = await anne.press_data(card_of(anne, hidden.id), f"m:a:{hidden.id}", forge=True)
    assert late["show_alert"] is True
    assert late["text"].startswith("🙈 Skjult af moderator ")

    by_id = {i.id: i for i in await items(app)}
    assert by_id[approved.id].status == ItemStatus.APPROVED
    assert by_id[hidden.id].status == ItemStatus.HIDDEN
    assert by_id[hidden.id].reason == "offensive"
    assert by_id[rephrase.id].status == ItemStatus.REPHRASE
    assert by_id[blocked.id].status == ItemStatus.BLOCKED
    decided_events = {"approved", "hidden", "rephrase", "blocked"}
    decisions = [e for e in await trail(app) if e.event in decided_events]
    assert sorted(e.event for e in decisions) == ["approved", "blocked", "hidden", "rephrase"]
    assert all(e.actor.startswith("moderator ") for e in decisions)
    answers_now = {row[0].id: row[0] for row in await model_rows(app, Answer)}
    assert answers_now[approved.answer_id].visibility == Visibility.VISIBLE
    assert answers_now[hidden.answer_id].visibility == Visibility.HIDDEN
    assert outcomes(bo) == [told]


async def test_a_telegram_moderator_and_the_dashboard_race_for_the_same_item(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    # Refusals (404, 409) show the queue: never from inside the refused unit of work.
    watch = NestedUnitsOfWork(app.engine)
    await import_consultation(app, consultation_source())
    authors = [
        await held(fake_bot, ANNA, "Idiotkommune, byg nu bare den sti"),
        await held(fake_bot, BO, "I er nogle idioter på rådhuset"),
    ]
    anne = Moderator(fake_bot, 901)
    await eventually(lambda: len(anne.cards()) == 2, what="two cards")
    winners = set()
    async with logged_in(app, "moderator") as session:
        for item, author in zip(await items(app), authors, strict=True):
            card = card_of(anne, item.id)
            token = csrf_of(await page(session))
            pressed, posted = await asyncio.gather(
                anne.press(card, "✅ Godkend"),
                session.post(
                    f"{QUEUE}/{item.id}/decide",
                    data={"decision": "hide", "csrf": token},
                    allow_redirects=False,
                ),
            )
            answer = await posted.text()
            (decided,) = [i for i in await items(app) if i.id == item.id]
            entries = [
                e for e in await trail(app) if e.item_id == item.id and e.event != "screened"
            ]
            # Exactly one decision is applied, and the other side is told who came first.
            assert [e.event for e in entries] == [decided.status]
            if decided.status == ItemStatus.APPROVED:
                winners.add("telegram")
                assert pressed["text"] == "Godkendt"
                assert posted.status == 409
                assert "Der var allerede truffet en afgørelse" in answer
                assert f"#{item.id}: ✅ Godkendt af moderator " in answer
                line = "✅ Godkendt af Borger 901"
            else:
                assert decided.status == ItemStatus.HIDDEN
                winners.add("dashboard")
                assert posted.status == 303
                assert pressed["show_alert"] is True
                assert pressed["text"].startswith("🙈 Skjult af moderator ")
                line = "🙈 Skjult af moderator "
            await eventually(
                lambda card=card, line=line: (
                    line in (anne.card_now(card).text or "") and anne.card_now(card).buttons == []
                ),
                what="the card shows the decision",
            )
            (told,) = await eventually(lambda author=author: outcomes(author), what="author told")
            # Nothing more comes: a second message would be a decision applied twice.
            await asyncio.sleep(0.5)
            assert outcomes(author) == [told]
            assert (told.startswith(APPROVED)) == (decided.status == ItemStatus.APPROVED)
    assert winners  # which side wins is up to the race; either way exactly one decision counts
    assert not watch.nested, watch.nested


async def browser_login(context: Any, app: BorgerDialog) -> Any:
    """A page in ``context`` logged in as the moderator through the login form."""
    page = await context.new_page()
    await page.goto(f"{app.settings.public_base_url}/admin/login")
    await page.get_by_label("E-mail").fill(ROLE_EMAILS["moderator"])
    await page.get_by_label("Adgangskode").fill(PASSWORD)
    await page.get_by_role("button", name="Log ind").click()
    await page.wait_for_url("**/admin")
    await page.goto(f"{app.settings.public_base_url}{QUEUE}")
    return page


@BROWSER_DATABASE
async def test_a_moderator_decides_in_a_browser_with_the_keyboard_and_without_javascript(
    app: BorgerDialog, fake_bot: FakeBot, browser: Any
) -> None:
    await import_consultation(app, consultation_source())
    anna = await held(fake_bot, ANNA, "Idiotkommune, byg nu bare den sti")
    bo = await held(fake_bot, BO, "I er nogle idioter på rådhuset")
    carl = await held(fake_bot, CARL, f"Idioter, allesammen på rådhuset. Ring på {PHONE}")
    ditte = await held(fake_bot, DITTE, "Idiotkommune igen, byg den sti")
    first, second, third, fourth = await items(app)
    await add_staff(app, ROLE_EMAILS["moderator"], "moderator")

    # With JavaScript: the shortcuts. "a" approves the oldest; "h" puts the focus on the
    # reason, the arrow keys choose one and Enter hides.
    context = await browser.new_context(locale="da-DK", viewport={"width": 1280, "height": 900})
    page = await browser_login(context, app)
    assert await page.locator("#shortcuts").is_visible()
    await assert_accessible(page)
    if os.environ.get("BORGERDIALOG_SCREENSHOTS") == "1":
        # The README's picture of the queue: four held contributions, the phone number masked.
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
    await page.keyboard.press("a")
    await page.get_by_text(f"#{first.id}: ✅ Godkendt af moderator").wait_for()
    await assert_accessible(page)
    await page.keyboard.press("j")  # the next item: the oldest left is now the first, j moves on
    await page.keyboard.press("k")  # and k comes back to it
    await page.keyboard.press("h")
    reason = page.locator(f"#reason-{second.id}")
    await page.wait_for_function(f"document.activeElement.id === 'reason-{second.id}'")
    for _ in range(3):
        await page.keyboard.press("ArrowDown")
    assert await reason.input_value() == "offensive"
    await page.keyboard.press("Enter")
    await page.get_by_text(f"#{second.id}: 🙈 Skjult af moderator").wait_for()
    assert "(Krænkende sprog)" in await page.locator(".notice").inner_text()
    assert PHONE not in await page.content()
    await (
        page.locator(f"#item-{third.id}")
        .get_by_role("button", name="Vis de skjulte oplysninger")
        .click()
    )
    await page.locator(".contribution.revealed").wait_for()
    assert PHONE in await page.locator(f"#item-{third.id}").inner_text()
    # The keys now act on the revealed item: "h" goes to its reason.
    await page.keyboard.press("h")
    await page.wait_for_function(f"document.activeElement.id === 'reason-{third.id}'")
    await assert_accessible(page)
    await page.goto(f"{app.settings.public_base_url}/admin")
    assert "2 bidrag venter på en afgørelse." in await page.content()
    await assert_accessible(page)
    await context.close()

    # Without JavaScript: the same forms, by their buttons.
    context = await browser.new_context(locale="da-DK", java_script_enabled=False)
    page = await browser_login(context, app)
    assert not await page.locator("#shortcuts").is_visible()
    await page.locator(f"#item-{third.id}").get_by_role("button", name="Godkend").click()
    await page.get_by_text(f"#{third.id}: ✅ Godkendt af moderator").wait_for()
    item = page.locator(f"#item-{fourth.id}")
    await item.get_by_label("Begrundelse til forfatteren").select_option("spam")
    await item.get_by_role("button", name="Skjul").click()
    await page.get_by_text(f"#{fourth.id}: 🙈 Skjult af moderator").wait_for()
    assert "Der er ingen bidrag at tage stilling til lige nu." in await page.content()
    assert PHONE not in await page.content()
    await context.close()

    await eventually(lambda: outcomes(anna) and outcomes(carl), what="approvals told")
    assert outcomes(anna)[0].startswith(APPROVED)
    (told,) = await eventually(lambda: outcomes(bo), what="the hiding told")
    assert "sproget kan krænke andre" in told
    (told,) = await eventually(lambda: outcomes(ditte), what="the second hiding told")
    assert "reklame eller spam" in told
    anne = Moderator(fake_bot, 901)
    for item_id in (first.id, second.id, third.id, fourth.id):
        await eventually(
            lambda item_id=item_id: card_of(anne, item_id).buttons == [],
            what=f"card {item_id} decided",
        )
