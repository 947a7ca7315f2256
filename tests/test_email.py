"""Hearing back by e-mail from the web chat, against a real local SMTP server (aiosmtpd).

A web citizen finishes the example consultation, says yes to hearing back, types an address
(a bad one first), confirms it from the e-mail's link, and then hears the results and a
decision by e-mail, each with an unsubscribe link that works in one click.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from bot.admin.notices import ModeratorMail
from bot.app import BorgerDialog
from bot.config import Settings, SettingsError, load_settings
from handlers.email import CONFIRM_WITHIN, read_address
from handlers.ideas.staff import add_staff_statement, decide
from handlers.plan.planning import PostDraft, plan_post
from scheduler.jobs import send_moderation_digest
from storage.models import EmailAddress, OutboxMessage, OutboxStatus
from tests.citizens import example_with_round, import_consultation
from tests.clock import Clock
from tests.conftest import eventually, table_rows
from tests.dashboard import add_staff
from tests.postgres import free_port
from tests.webcitizens import WebTab, open_tab, web_session

ORGANISATION = "Testkommune"
ADDRESS = "ida@eksempel.dk"


class Mailbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def app(
    make_settings: Callable[..., Settings], mailbox: tuple[Mailbox, int]
) -> AsyncIterator[BorgerDialog]:
    _, port = mailbox
    settings = make_settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from=f"{ORGANISATION} <borgerdialog@kommune.example>",
        smtp_starttls=False,
        organisation_name=ORGANISATION,
    )
    application = BorgerDialog(settings, clock=Clock(datetime.now(UTC)))
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


def base(app: BorgerDialog) -> str:
    return app.settings.public_base_url


def clock_of(app: BorgerDialog) -> Clock:
    assert isinstance(app.clock, Clock)
    return app.clock


async def import_example(app: BorgerDialog) -> datetime:
    """The example consultation, open now and closing at noon (local time) three days on;
    return when it closes.

    Noon, not this hour three days on: a round closing in the quiet hours (21:00 to 8:00) has
    its results posted at 8:00 the morning after, and a test run in the evening waited for
    results at the closing that were not due yet.
    """
    now = clock_of(app).now
    three_days_on = (now + timedelta(days=3)).astimezone(app.settings.zone)
    closes = three_days_on.replace(hour=12, minute=0, second=0, microsecond=0).astimezone(UTC)
    await import_consultation(app, example_with_round(now - timedelta(days=1), closes), now)
    return closes


async def answer_up_to_the_idea(tab: WebTab) -> None:
    """Consent and answer the example consultation in the web chat until it asks for an idea."""
    await tab.write("/start friluftsliv", new=2)
    await tab.tap("Ja, jeg giver samtykke")
    await tab.tap("Under 25")
    await tab.tap("Nord")
    await tab.tap("☐ Løber", new=0)
    await tab.tap("Færdig")
    await tab.tap("5")
    await tab.tap("Nej")
    await tab.write("3")
    await tab.write("8000")


async def finish_and_say_yes(tab: WebTab, new: int = 1) -> list[str]:
    """Answer the example consultation in the web chat and say yes to hearing back."""
    await answer_up_to_the_idea(tab)
    await tab.write("En sti hele vejen rundt om søen", new=2)
    return await tab.tap("Ja", new=new)


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def link(text: str, path: str) -> str:
    found = re.search(r"(http://\S+" + re.escape(path) + r"\?token=\S+)", text)
    assert found, f"no {path} link in {text!r}"
    return found.group(1)


async def drain(app: BorgerDialog) -> None:
    async def drained() -> bool:
        rows = await table_rows(app, OutboxMessage)
        return not any(r.status == OutboxStatus.PENDING for r in rows)

    await eventually(drained, what="every queued message delivered")


async def post_now(app: BorgerDialog, text: str) -> None:
    """Plan a post for the consultation's participants due now, and publish it."""
    assert app.uow is not None
    assert app.publisher is not None
    draft = PostDraft(
        texts={"da": text},
        audience={"channel": False, "chats": [], "subscribers": "hear_back"},
        when="now",
        consultation="friluftsliv",
    )
    async with app.uow() as uow:
        await plan_post(uow, draft, app.clock(), app.settings.zone, "test")
        await uow.commit()
    await app.publisher.publish_due()
    await drain(app)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_a_web_citizen_confirms_an_address_hears_results_and_decisions_and_unsubscribes(
    app: BorgerDialog, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    closes = await import_example(app)
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        texts = await finish_and_say_yes(tab)
        assert texts[-1].startswith("Vil du også have besked på e-mail?")

        # A bad address gets a polite answer, and can be typed again.
        texts = await tab.write("ida at eksempel")
        assert texts[-1].startswith("Det ligner ikke en e-mailadresse.")
        texts = await tab.write(f"  {ADDRESS} ")
        assert texts[-1].startswith("Tak! Vi har sendt en e-mail med et link.")

        # The confirmation e-mail: plain UTF-8 text in Danish, a link, an unsubscribe link.
        await eventually(lambda: len(box.messages) == 1, what="the confirmation e-mail")
        confirmation = box.messages[0]
        assert box.recipients[0] == [ADDRESS]
        assert confirmation["To"] == ADDRESS
        assert confirmation["Subject"] == f"Bekræft din e-mailadresse hos {ORGANISATION}"
        assert confirmation.get_content_type() == "text/plain"
        assert confirmation.get_content_charset() == "utf-8"
        text = body(confirmation)
        assert ORGANISATION in text
        confirm_url = link(text, "/email/confirm")
        assert confirmation["List-Unsubscribe"] == f"<{link(text, '/email/unsubscribe')}>"
        (row,) = await table_rows(app, EmailAddress)
        assert row.confirmed_at is None
        # Only a hash of the link's token is stored.
        assert row.token_hash not in confirm_url

        # Not confirmed: a post reaches the chat, not the address.
        await post_now(app, "Tak for jeres svar indtil nu")
        await eventually(
            lambda: "Tak for jeres svar indtil nu" in tab.bot_texts(), what="the post in the chat"
        )
        assert len(box.messages) == 1

        # The link confirms once; opening it again says it no longer works.
        status, page = await get(session, confirm_url)
        assert status == 200
        assert "Din e-mailadresse er bekræftet" in page
        assert "Your e-mail address is confirmed" in page
        status, page = await get(session, confirm_url)
        assert status == 404
        assert "Linket virker ikke" in page

        # The results at closing arrive by e-mail too.
        clock_of(app).now = closes + timedelta(seconds=1)
        assert app.publisher is not None
        await app.publisher.publish_due()
        await drain(app)
        await eventually(lambda: len(box.messages) == 2, what="the results by e-mail")
        results = box.messages[1]
        assert results["Subject"] == f"Nyt fra {ORGANISATION} om din borgerhøring"
        text = body(results)
        assert "Ny friluftspolitik" in text
        unsubscribe = link(text, "/email/unsubscribe")
        assert results["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert results["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        # A decision on the citizen's statement reaches them by e-mail, without chat buttons.
        assert app.uow is not None
        assert app.core is not None
        async with app.uow() as uow:
            consultation = await uow.consultations.by_slug("friluftsliv")
            assert consultation is not None
            (participation,) = await uow.participations.of_consultation(consultation.id)
            statement = await add_staff_statement(
                uow, consultation, {"da": "Flere bænke ved søen"}, app.clock()
            )
            statement.participation_id = participation.id
            messages = await decide(
                uow,
                statement,
                "accepted",
                "Bænkene kommer til foråret.",
                None,
                app.clock(),
                app.core.texts,
            )
            for address, reply in messages:
                await uow.outbox.add(
                    address.channel, address.chat_id, reply.to_payload(), app.clock()
                )
            await uow.commit()
        assert sorted(address.channel for address, _ in messages) == ["email", "web"]
        for address, _ in messages:
            await app.core.delivery.deliver_chat(address.channel, address.chat_id)
        await eventually(lambda: len(box.messages) == 3, what="the decision by e-mail")
        text = body(box.messages[2])
        assert "Flere bænke ved søen" in text
        assert "Bænkene kommer til foråret." in text

        # One click unsubscribes and erases the address; nothing more arrives.
        async with aiohttp.ClientSession() as stranger:
            status, page = await get(stranger, unsubscribe)
            assert status == 200
            assert "Du er afmeldt" in page
            forged = unsubscribe[:-1] + ("0" if unsubscribe[-1] != "0" else "1")
            status, _ = await get(stranger, forged)
            assert status == 404
        assert await table_rows(app, EmailAddress) == []
        await post_now(app, "Et sidste opslag")
        await eventually(
            lambda: "Et sidste opslag" in tab.bot_texts(), what="the last post in the chat"
        )
        assert len(box.messages) == 3
        await tab.close()


async def test_mydata_shows_the_address_and_forget_erases_it(
    app: BorgerDialog, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    await import_example(app)
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        await finish_and_say_yes(tab)
        await tab.write(ADDRESS)
        await eventually(lambda: len(box.messages) == 1, what="the confirmation e-mail")
        status, _ = await get(session, link(body(box.messages[0]), "/email/confirm"))
        assert status == 200
        # The typed address does not stay in the transcript; a new tab shows the placeholder.
        again = WebTab(base(app), session)
        await again.open()
        await eventually(lambda: again.bot_texts(), what="the history")
        citizen_texts = [m["text"] for m in again.messages.values() if m["author"] == "citizen"]
        assert ADDRESS not in citizen_texts
        assert "✉️ (din e-mailadresse – gemt for sig selv)" in citizen_texts
        await again.close()

        texts = await tab.write("/minedata", new=2)
        assert f"E-mail til besked: {ADDRESS} (bekræftet)" in "\n".join(texts)
        # Where e-mail is offered, /privatliv says how long an address is kept.
        (privacy,) = (await tab.write("/privatliv"))[-1:]
        hours = int(CONFIRM_WITHIN.total_seconds() // 3600)
        assert "Giver du din e-mailadresse for at høre om resultatet" in privacy
        assert f"slettes efter {hours} timer" in privacy
        await tab.write("/glem")
        await tab.tap("Ja, slet", new=0)

        async def erased() -> bool:
            return await table_rows(app, EmailAddress) == []

        await eventually(erased, what="the address erased by /forget")
        await tab.close()


async def test_without_smtp_settings_no_e_mail_is_offered(
    make_settings: Callable[..., Settings],
) -> None:
    application = BorgerDialog(make_settings(), clock=Clock(datetime.now(UTC)))
    await application.start()
    try:
        await import_example(application)
        async with web_session() as session:
            tab = await open_tab(base(application), session)
            await finish_and_say_yes(tab, new=0)
            await eventually(
                lambda: tab.bot_texts()[-1].endswith("✅ Vi giver dig besked her."),
                what="the yes to hearing back",
            )
            # /privatliv names no e-mail either where none can be given.
            await tab.write("/privatliv")
            assert not any("e-mail" in text for text in tab.bot_texts())
            await tab.close()
    finally:
        await application.stop()


def test_addresses_are_read_politely_and_smtp_settings_are_checked() -> None:
    assert read_address(" Ida@Eksempel.DK ") == "Ida@eksempel.dk"
    assert read_address("<ida@søborg.dk>") == "ida@xn--sborg-vua.dk"
    for bad in ("ida", "ida@", "@eksempel.dk", "ida@eksempel", "i da@eksempel.dk", "a@b@c.dk"):
        assert read_address(bad) is None, bad
    with pytest.raises(SettingsError) as missing_from:
        load_settings(_env_file=None, smtp_host="mail.example")
    assert missing_from.value.lines == [
        "BORGERDIALOG_SMTP_FROM: needed with BORGERDIALOG_SMTP_HOST (the sender address)"
    ]
    with pytest.raises(SettingsError) as clear_password:
        load_settings(
            _env_file=None,
            smtp_host="mail.example",
            smtp_from="bot@kommune.example",
            smtp_username="bot",
            smtp_password="hemmelig-adgangskode",
            smtp_starttls=False,
        )
    assert "hemmelig" not in str(clear_password.value)
    assert clear_password.value.lines[0].startswith("BORGERDIALOG_SMTP_STARTTLS: must be true")
    with pytest.raises(SettingsError) as bad_sender:
        load_settings(_env_file=None, smtp_host="mail.example", smtp_from="not an address")
    assert bad_sender.value.lines[0].startswith("BORGERDIALOG_SMTP_FROM: is not an e-mail")


async def test_dashboard_moderators_hear_by_e_mail_that_contributions_wait(
    app: BorgerDialog, mailbox: tuple[Mailbox, int]
) -> None:
    """No Telegram moderator chat here: the digest reaches the moderator accounts by e-mail,
    with counts and the queue's address only, once per wait."""
    box, _ = mailbox
    await import_example(app)
    await add_staff(app, "mads@kommune.dk", "moderator")
    await add_staff(app, "ada@kommune.dk", "admin")
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        await answer_up_to_the_idea(tab)
        held = "I er nogle idioter på rådhuset, lav en sti rundt om søen"
        await tab.write(held)
    assert app.uow is not None
    assert app.core is not None
    mail = ModeratorMail(app.settings, app.core.texts(None), app.clock)
    later = clock_of(app).now + timedelta(hours=2)
    job = (app.uow, lambda: later, app.core.delivery, app.core.moderation, app.core.texts, mail)
    assert await send_moderation_digest(*job)
    await eventually(lambda: box.messages, what="the digest e-mail")
    (message,) = box.messages
    assert box.recipients == [["mads@kommune.dk"]]  # the moderator; the admin only if none
    assert message["Subject"] == f"Bidrag venter på moderation – {ORGANISATION}"
    text = body(message)
    assert "1 bidrag venter" in text
    assert f"{base(app)}/admin/moderation" in text
    assert "idioter" not in text
    assert not await send_moderation_digest(*job), "not again before they wait that long again"
    assert len(box.messages) == 1
