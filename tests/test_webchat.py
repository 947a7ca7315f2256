"""The web chat: the same dialogue core over a WebSocket, with a signed cookie and no account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import aiohttp
import pytest

from bot.app import BorgerDialog
from bot.channels.webchat.identity import MAX_AGE_SECONDS
from bot.config import Settings
from scheduler.jobs import UNCONSENTED_IDLE
from storage.models import InboxEvent, Participant
from tests.citizens import Citizen, import_consultation, open_now
from tests.conftest import eventually, table_rows
from tests.exports import export_rows
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.webcitizens import WebTab, open_tab, web_session


@pytest.fixture
async def app(make_settings: Callable[..., Settings]) -> AsyncIterator[BorgerDialog]:
    application = BorgerDialog(make_settings())
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


def base(app: BorgerDialog) -> str:
    return app.settings.public_base_url


async def test_the_page_sets_a_signed_http_only_cookie_and_speaks_the_browsers_language(
    app: BorgerDialog,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base(app)}/chat", headers={"Accept-Language": "en-GB,en;q=0.9"}) as response,
    ):
        page = await response.text()
        cookie = response.cookies["borgerdialog_id"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert '<html lang="en">' in page
    assert "Your message" in page
    assert "Din besked" in page


async def test_the_socket_refuses_strangers_forgers_and_other_sites(app: BorgerDialog) -> None:
    async with web_session() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
            await session.ws_connect(f"{base(app)}/chat/ws")
        assert missing.value.status == 403
        session.cookie_jar.update_cookies({"borgerdialog_id": "someone.forgedsignature"})
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"{base(app)}/chat/ws")
    async with web_session() as session:
        await session.get(f"{base(app)}/chat")
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await session.ws_connect(
                f"{base(app)}/chat/ws", headers={"Origin": "https://evil.example"}
            )
        assert foreign.value.status == 403


async def test_a_web_citizen_answers_through_the_same_flows(app: BorgerDialog) -> None:
    await import_consultation(app, open_now())
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        texts = await tab.write("/start friluftsliv", new=2)
        assert texts[0].startswith("Ny friluftspolitik")
        await tab.tap("Ja, jeg giver samtykke")
        await tab.tap("Under 25")
        # The answered question is edited in place: the answer shown, the buttons gone.
        answered = [m for m in tab.messages.values() if m["text"].endswith("✅ Under 25")]
        assert answered
        assert answered[0]["buttons"] == []
        await tab.close()
    (row,) = await export_rows(app)
    assert row["channel"] == "web"
    assert row["age_band"] == "Under 25"


async def test_a_link_typed_with_capitals_or_a_space_opens_its_consultation(
    app: BorgerDialog,
) -> None:
    """A link copied off a poster as /chat?c=Friluftsliv opens the consultation, as /start
    Friluftsliv does: the header names it and the chat starts it."""
    await import_consultation(app, open_now())
    async with web_session() as session:
        async with session.get(f"{base(app)}/chat", params={"c": "Friluftsliv "}) as response:
            page = await response.text()
        assert "Ny friluftspolitik" in page
        tab = await open_tab(base(app), session)
        await tab.send({"type": "open", "slug": "FRILUFTSLIV "})
        await eventually(lambda: len(tab.bot_texts()) >= 2, what="the consultation opened")
        assert tab.bot_texts()[0].startswith("Ny friluftspolitik")
        await tab.close()


async def test_a_link_to_no_consultation_is_answered_without_a_bubble_the_citizen_never_typed(
    app: BorgerDialog,
) -> None:
    """/chat?c=nope: the bot says there is no such consultation; the chat does not show "nope"
    as if the citizen had written it."""
    await import_consultation(app, open_now())
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        await tab.send({"type": "open", "slug": "nope"})
        await eventually(lambda: len(tab.bot_texts()) >= 1, what="the bot's answer")
        authors = [m["author"] for _, m in sorted(tab.messages.items())]
        assert "citizen" not in authors, tab.messages
        assert tab.bot_texts()[0].startswith("Jeg kender ikke den borgerdialog")
        await tab.close()


async def test_the_bare_address_opens_the_chat_and_unknown_ones_get_a_page(
    app: BorgerDialog,
) -> None:
    """The server's own address (from a poster, without /chat) leads to the chat, its link's
    consultation kept; an address that is not there, or a method a page does not take, gets a
    short page in Danish and English with the way to the chat, not aiohttp's English line."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base(app)}/?c=friluftsliv", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/chat?c=friluftsliv"
        for method, path, status, heading in (
            ("GET", "/nothing-here", 404, "Siden findes ikke"),
            ("GET", "/chat/", 404, "Siden findes ikke"),
            ("PUT", "/chat", 405, "Det kan man ikke her"),
            # The dashboard's login took any method and answered with its page.
            ("PUT", "/admin/login", 405, "Det kan man ikke her"),
            ("DELETE", "/admin", 405, "Det kan man ikke her"),
        ):
            async with session.request(method, f"{base(app)}{path}") as response:
                page = await response.text()
                assert response.status == status, (method, path)
                assert response.content_type == "text/html"
                assert heading in page
                assert '<a href="/chat">Gå til chatten</a>' in page
                assert '<a href="/chat">Go to the chat</a>' in page
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with session.put(f"{base(app)}/chat") as response:
            assert "GET" in response.headers["Allow"]
        async with session.get(f"{base(app)}/admin/nothing-here") as response:
            assert "Gå til chatten" not in await response.text()  # the dashboard's own page


async def test_a_resent_message_is_applied_once_and_tabs_stay_in_step(app: BorgerDialog) -> None:
    async with web_session() as session:
        first = await open_tab(base(app), session)
        second = await open_tab(base(app), session)
        client_id = await first.send({"type": "text", "text": "/hjaelp"})
        # The same message again, as a tab does after a reconnect when no receipt came.
        await first.send({"type": "text", "text": "/hjaelp"}, client_id=client_id)
        await eventually(lambda: len(second.bot_texts()) == 1, what="the reply in the other tab")
        assert first.bot_texts() == second.bot_texts()
        await eventually(
            lambda: [e["type"] for e in first.events].count("received") == 2,
            what="both sends acknowledged (the repeat is acknowledged, not applied again)",
        )
        await first.close()
        # A new connection gets the whole conversation back.
        again = WebTab(base(app), session)
        await again.open()
        await eventually(lambda: again.bot_texts() == second.bot_texts(), what="the history")
        await again.close()
        await second.close()
    events = await table_rows(app, InboxEvent)
    assert len(events) == 1


async def test_abuse_limits(app: BorgerDialog) -> None:
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        await tab.send({"type": "text", "text": "x" * 2001})
        await eventually(lambda: any(e["type"] == "error" for e in tab.events), what="refusal")
        assert tab.events[-1]["text"] == "Beskeden er for lang. Prøv at gøre den kortere."
        for number in range(40):
            await tab.send({"type": "text", "text": f"besked {number}"})
        await eventually(
            lambda: any(
                e.get("text") == "Du skriver lidt hurtigt. Vent et øjeblik, og prøv igen."
                for e in tab.events
            ),
            what="the rate limit",
        )
        await tab.close()


async def test_mydata_and_forget_on_the_web(app: BorgerDialog) -> None:
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        await tab.write("/sprog")
        await tab.tap("English", new=0)
        await eventually(
            lambda: "Fine – I will write in English" in tab.bot_texts()[-1], what="language set"
        )
        texts = await tab.write("/mydata", new=2)
        assert texts[-2].startswith("What we have stored about you")
        attachments = [m for m in tab.messages.values() if m.get("attachment")]
        assert attachments[0]["attachment"]["filename"] == "my-data.json"
        await tab.write("/forget")
        await tab.tap("Yes, erase", new=0)
        await eventually(
            lambda: tab.bot_texts()[-1].startswith("Your data and answers have"), what="erased"
        )
        await tab.close()
    assert await table_rows(app, Participant) == []


async def test_privacy_names_what_the_web_chat_keeps_and_for_how_long(app: BorgerDialog) -> None:
    """The web chat keeps a transcript and a cookie, which Telegram has not: /privatliv says so,
    with the times the cookie and the transcript of someone who never says yes really last."""
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        (privacy,) = (await tab.write("/privatliv"))[-1:]
        await tab.close()
    assert privacy.startswith("Sådan passer vi på dine oplysninger")
    assert "I webchatten gemmer vi samtalen her – også det, du skriver" in privacy
    assert f"i {MAX_AGE_SECONDS // (24 * 3600)} dage efter dit seneste besøg" in privacy
    assert timedelta(days=1) == UNCONSENTED_IDLE
    assert "slettes den efter et døgn uden aktivitet" in privacy
    assert "Telegram har sin egen kopi" not in privacy
    # Who sees the ideas, and what stays after /glem, in every channel.
    assert "andre deltagere ser dine idéer uden dit navn" in privacy
    assert "Idéer, du har delt, bliver efter /glem stående" in privacy
    assert privacy.endswith("Spørgsmål: kontakt den myndighed, der har sat denne bot op.")


async def test_telegram_and_web_citizens_in_one_export(
    fake_telegram: FakeTelegram, fake_bot: FakeBot, make_settings: Callable[..., Settings]
) -> None:
    application = BorgerDialog(
        make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    )
    await application.start()
    try:
        await import_consultation(application, open_now())
        telegram_citizen = Citizen(fake_bot, 401)
        await telegram_citizen.write("/start friluftsliv", new=2)
        await telegram_citizen.tap("Ja, jeg giver samtykke")
        await telegram_citizen.tap("25-64")
        async with web_session() as session:
            tab = await open_tab(base(application), session)
            await tab.write("/start friluftsliv", new=2)
            await tab.tap("Ja, jeg giver samtykke")
            await tab.tap("65 eller derover")
            await tab.close()
        rows = await export_rows(application)
    finally:
        await application.stop()
    assert sorted((r["channel"], r["age_band"]) for r in rows) == [
        ("telegram", "25-64"),
        ("web", "65 eller derover"),
    ]


def test_buttons_that_step_aside_are_drawn_plainer_and_ticked_options_pressed() -> None:
    from bot.channels.webchat.channel import _button_json
    from handlers.payloads import (
        CardAction,
        CardButton,
        GoBack,
        IdeasAction,
        IdeasButton,
        PickOption,
        SkipQuestion,
        TickOption,
    )

    def shown(payload: str, label: str = "x") -> dict:
        return _button_json({"label": label, "payload": payload})

    for aside in (
        GoBack(1, 2),
        SkipQuestion(1, 2),
        CardButton(3, CardAction.REPORT),
        CardButton(3, CardAction.STOP, changing_vote=True),
        IdeasButton(IdeasAction.CANCEL_DRAFT, 1),
    ):
        assert shown(aside.wire).get("secondary") is True, aside
    for answer in (PickOption(1, 2, 0), CardButton(3, CardAction.AGREE), TickOption(1, 2, 0)):
        assert "secondary" not in shown(answer.wire), answer
    assert shown(TickOption(1, 2, 0).wire, "☑ Løber")["pressed"] is True
    assert shown(TickOption(1, 2, 0).wire, "☐ Løber")["pressed"] is False
    assert "pressed" not in shown("t:1:2:x")  # not a payload the bot makes
