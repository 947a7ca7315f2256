"""A catalogue of hostile web-chat frames and requests: each gets a polite answer, none a crash.

After every bad frame the same socket must still work: a good message sent next is stored and
answered. Nothing is logged with a traceback, and nothing unstorable reaches the inbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import select

from bot.app import BorgerDialog
from bot.channels.webchat.identity import COOKIE, MAX_AGE_SECONDS, CookieSigner
from bot.channels.webchat.limits import OpenCounts, TokenBuckets, client_address
from bot.config import Settings, load_settings
from bot.dialogue.i18n import Catalogs
from storage.models import InboxEvent, InboxStatus, WebMessage
from tests.conftest import eventually
from tests.postgres import free_port
from tests.webcitizens import WebTab, open_tab, web_session

DANISH = Catalogs("da").texts("da")
SECRET = "hostile-test-secret"
_addresses = itertools.count(1)


def new_address() -> dict[str, str]:
    """A fresh client address (the app trusts X-Forwarded-For here), so cases share no limits."""
    number = next(_addresses)
    return {"X-Forwarded-For": f"10.9.{number // 250}.{number % 250 + 1}"}


@dataclass(frozen=True)
class Bad:
    """A frame the page would never send, and the refusal the participant should see."""

    frame: str | bytes
    key: str
    # The client id the refusal must carry (None: the frame's id could not be read).
    echo: str | None = None


@dataclass(frozen=True)
class Taken:
    """A frame that is odd but acceptable: stored, acknowledged and answered."""

    frame: str
    client_id: str
    # What the stored text must be (None: a button, which stores no text).
    stored: str | None = None


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def text(value: Any, client_id: Any = "good-id") -> str:
    return frame(id=client_id, type="text", text=value)


def button(payload: Any, message: Any = "1", client_id: str = "tap-id") -> str:
    return frame(id=client_id, type="button", payload=payload, message=message)


DEEP = "[" * 4000 + "]" * 4000
UNREADABLE = "web.unreadable"
STALE = "button.stale"

BAD_FRAMES = {
    # Not JSON, or JSON of the wrong shape.
    "not-json": Bad("hello", UNREADABLE),
    "truncated-json": Bad('{"id": "a1", "type": "text", "text": "hej"', UNREADABLE),
    "empty-frame": Bad("", UNREADABLE),
    "json-null": Bad("null", UNREADABLE),
    "json-list": Bad('[{"id": "a1", "type": "text", "text": "hej"}]', UNREADABLE),
    "json-number": Bad("5", UNREADABLE),
    "json-string": Bad('"hej"', UNREADABLE),
    "deep-array-4000": Bad(DEEP, UNREADABLE),
    "deep-object-4000": Bad('{"a":' * 4000 + "1" + "}" * 4000, UNREADABLE),
    "deep-nesting-in-text": Bad('{"id": "a1", "type": "text", "text": ' + DEEP + "}", UNREADABLE),
    "byte-order-mark": Bad("\ufeff" + text("hej"), UNREADABLE),
    "raw-nul-inside-string": Bad('{"id": "a1", "type": "text", "text": "a\x00b"}', UNREADABLE),
    "invalid-escape": Bad('{"id": "a1", "type": "text", "text": "\\x00"}', UNREADABLE),
    "nan-as-text": Bad('{"id": "a1", "type": "text", "text": NaN}', UNREADABLE, "a1"),
    # The client id: a strict shape, echoed when it is a string so a page can drop the message.
    "id-missing": Bad(frame(type="text", text="hej"), UNREADABLE),
    "id-empty": Bad(text("hej", ""), UNREADABLE, ""),
    "id-37-characters": Bad(text("hej", "a" * 37), UNREADABLE, "a" * 37),
    "id-500-characters": Bad(text("hej", "a" * 500), UNREADABLE),
    "id-with-nul": Bad(text("hej", "a\x00b"), UNREADABLE, "a\x00b"),
    "id-lone-surrogate": Bad(text("hej", "a\ud800"), UNREADABLE, "a\ud800"),
    "id-escape-character": Bad(text("hej", "a\x1b[2J"), UNREADABLE, "a\x1b[2J"),
    "id-object": Bad(text("hej", {}), UNREADABLE),
    "id-list": Bad(text("hej", ["a"]), UNREADABLE),
    "id-null": Bad(text("hej", None), UNREADABLE),
    "id-number": Bad(text("hej", 5), UNREADABLE),
    "id-true": Bad(text("hej", True), UNREADABLE),
    "id-with-space": Bad(text("hej", "a b"), UNREADABLE, "a b"),
    "id-path": Bad(text("hej", "../x"), UNREADABLE, "../x"),
    "id-danish-letter": Bad(text("hej", "åø"), UNREADABLE, "åø"),
    "id-emoji": Bad(text("hej", "👍"), UNREADABLE, "👍"),
    # The type.
    "type-missing": Bad(frame(id="t1", text="hej"), UNREADABLE, "t1"),
    "type-number": Bad(frame(id="t1", type=5, text="hej"), UNREADABLE, "t1"),
    "type-null": Bad(frame(id="t1", type=None, text="hej"), UNREADABLE, "t1"),
    "type-list": Bad(frame(id="t1", type=["text"], text="hej"), UNREADABLE, "t1"),
    "type-upper-case": Bad(frame(id="t1", type="TEXT", text="hej"), UNREADABLE, "t1"),
    "type-unknown": Bad(frame(id="t1", type="image", text="hej"), UNREADABLE, "t1"),
    "type-empty": Bad(frame(id="t1", type="", text="hej"), UNREADABLE, "t1"),
    # The text.
    "text-missing": Bad(frame(id="x1", type="text"), UNREADABLE, "x1"),
    "text-null": Bad(text(None, "x1"), UNREADABLE, "x1"),
    "text-number": Bad(text(5, "x1"), UNREADABLE, "x1"),
    "text-list": Bad(text(["hej"], "x1"), UNREADABLE, "x1"),
    "text-object": Bad(text({"a": "hej"}, "x1"), UNREADABLE, "x1"),
    "text-empty": Bad(text("", "x1"), "answer.text_empty", "x1"),
    "text-spaces": Bad(text("   \n\t ", "x1"), "answer.text_empty", "x1"),
    "text-only-nul": Bad(text("\x00\x00", "x1"), "answer.text_empty", "x1"),
    "text-only-controls": Bad(text("\x01\x07\x1b\x7f", "x1"), "answer.text_empty", "x1"),
    "text-lone-high-surrogate": Bad(text("hej \ud800 med dig", "x1"), UNREADABLE, "x1"),
    "text-lone-low-surrogate": Bad(text("\udc00", "x1"), UNREADABLE, "x1"),
    "text-2001-characters": Bad(text("x" * 2001, "x1"), "web.too_long", "x1"),
    "text-5000-two-byte-letters": Bad(text("é" * 5000, "x1"), "web.too_long", "x1"),
    "frame-over-16-kib": Bad(text("x" * 20_000, "x1"), "web.too_long", "x1"),
    # Button payloads the web layer refuses before any flow sees them.
    "payload-65-bytes": Bad(button("x" * 65), STALE, "tap-id"),
    "payload-66-bytes-of-letters": Bad(button("é" * 33), STALE, "tap-id"),
    "payload-empty": Bad(button(""), STALE, "tap-id"),
    "payload-null": Bad(button(None), STALE, "tap-id"),
    "payload-number": Bad(button(5), STALE, "tap-id"),
    "payload-object": Bad(button({"vote": 1}), STALE, "tap-id"),
    "payload-with-nul": Bad(button("v:1\x00"), STALE, "tap-id"),
    "payload-with-newline": Bad(button("v:1\r\n"), STALE, "tap-id"),
    "payload-lone-surrogate": Bad(button("v:\ud800"), STALE, "tap-id"),
    "payload-decomposed-letter": Bad(button("c:e\u0301"), STALE, "tap-id"),
    "message-ref-unicode-digit": Bad(button("f:n", "²"), STALE, "tap-id"),
    "message-ref-20-digits": Bad(button("f:n", "1" * 20), STALE, "tap-id"),
    "message-ref-negative": Bad(button("f:n", "-1"), STALE, "tap-id"),
    "message-ref-number": Bad(button("f:n", 5), STALE, "tap-id"),
    "message-ref-letters": Bad(button("f:n", "abc"), STALE, "tap-id"),
    # Binary frames: the page sends text only.
    "binary-garbage": Bad(b"\x00\x01\xff", UNREADABLE),
    "binary-json": Bad(text("hej").encode(), UNREADABLE),
}

ODD_BUT_FINE = {
    "text-with-nul-inside": Taken(text("hej\x00 med\x00 dig", "n1"), "n1", "hej med dig"),
    "text-with-terminal-escape": Taken(text("\x1b[31mrød\x1b[0m", "n1"), "n1", "[31mrød[0m"),
    "text-crlf": Taken(text("linje 1\r\nlinje 2", "n1"), "n1", "linje 1\nlinje 2"),
    "text-decomposed-letter": Taken(text("Kaffe\u0301", "n1"), "n1", "Kaffé"),
    "text-2000-characters": Taken(text("x" * 2000, "n1"), "n1", "x" * 2000),
    "text-extra-fields": Taken(
        frame(id="n1", type="text", text="hej", evil={"a": [1]}), "n1", "hej"
    ),
    "id-36-characters": Taken(text("hej", "a" * 36), "a" * 36, "hej"),
}

# Well-formed payloads the bot never handed out: they reach the flows, which must answer
# politely (a notice that the button no longer works, or a message).
FORGED_PAYLOADS = {
    "superscript-two": "²",
    "twenty-digits": "12345678901234567890",
    "negative": "-1",
    "path": "../../etc/passwd",
    "arabic-indic-digits": "١٢٣",
    "emoji": "👍",
    "huge-vote-number": "vote:999999999999999999999:agree",
    "huge-consent-number": "ok:999999999999999999999:y",
    "unknown-consultation": "c:../../findes-ikke",
    "edit-answer-of-nobody": "e:1:99",
    "ideas-menu-of-nobody": "i:m:1",
    "moderator-button": "m:a:1",
    "staff-plan-button": "p:s:1",
    "language-unknown": "lang:xx",
    "vote-on-nothing": "v:1:a",
    "sql-ish": "c:x' OR '1'='1",
    "sixty-four-bytes": "c:" + "x" * 62,
}


@pytest_asyncio.fixture(scope="class", loop_scope="class")
async def shared_app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BorgerDialog]:
    """One app for the whole catalogue (SQLite): cases differ by cookie and address."""
    folder = tmp_path_factory.mktemp("hostile")
    settings = load_settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{folder / 'borgerdialog.sqlite3'}",
        data_dir=folder,
        http_port=free_port(),
        trusted_proxy=True,
        web_secret=SECRET,
    )
    app = BorgerDialog(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def base(app: BorgerDialog) -> str:
    return app.settings.public_base_url


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [
        record for record in caplog.records if record.exc_info or "Traceback" in record.getMessage()
    ]
    assert bad == [], [record.getMessage() for record in bad]


async def inbox_rows(app: BorgerDialog, chat_id: str) -> list[Any]:
    assert app.engine is not None
    async with app.engine.connect() as connection:
        query = select(InboxEvent).where(InboxEvent.chat_id == chat_id)
        return list((await connection.execute(query)).all())


async def citizen_texts(app: BorgerDialog, chat_id: str) -> list[str]:
    assert app.engine is not None
    async with app.engine.connect() as connection:
        query = (
            select(WebMessage.text)
            .where(WebMessage.chat_id == chat_id, WebMessage.author == "citizen")
            .order_by(WebMessage.id)
        )
        return list((await connection.execute(query)).scalars())


def chat_id_of(session: aiohttp.ClientSession) -> str:
    (cookie,) = [c for c in session.cookie_jar if c.key == COOKIE]
    return "w-" + cookie.value.split(".")[0]


async def still_works(tab: WebTab) -> None:
    """A good message after the bad one is acknowledged, stored and answered."""
    before = len(tab.bot_texts())
    client_id = await tab.send({"type": "text", "text": "/hjaelp"})
    await eventually(
        lambda: any(e["type"] == "received" and e["id"] == client_id for e in tab.events),
        what="the good message acknowledged",
    )
    await eventually(lambda: len(tab.bot_texts()) > before, what="the good message answered")


async def nothing_unstorable(app: BorgerDialog, chat_id: str) -> None:
    async def settled() -> bool:
        return all(r.status != InboxStatus.PENDING for r in await inbox_rows(app, chat_id))

    await eventually(settled, what="every stored message handled")
    rows = await inbox_rows(app, chat_id)
    assert [r.status for r in rows if r.status == InboxStatus.FAILED] == []
    for row in rows:
        stored = json.dumps(row.payload, ensure_ascii=False) if row.payload else ""
        assert "\\u0000" not in stored
        assert "\x00" not in stored
    for written in await citizen_texts(app, chat_id):
        assert "\x00" not in written
        assert not any("\ud800" <= char <= "\udfff" for char in written)


async def send_raw(tab: WebTab, data: str | bytes) -> None:
    assert tab.socket is not None
    if isinstance(data, bytes):
        await tab.socket.send_bytes(data)
    else:
        await tab.socket.send_str(data)


async def refusal_after(tab: WebTab, seen: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = await eventually(
        lambda: [e for e in tab.events[seen:] if e["type"] == "error"], what="a refusal"
    )
    return found[0]


@pytest.mark.asyncio(loop_scope="class")
class TestCatalogue:
    """Every case on one shared app: a fresh participant and address each."""

    @pytest.mark.parametrize("case", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
    async def test_a_bad_frame_is_refused_politely_and_the_socket_stays_usable(
        self, shared_app: BorgerDialog, caplog: pytest.LogCaptureFixture, case: Bad
    ) -> None:
        caplog.set_level(logging.INFO)
        async with web_session() as session:
            tab = await open_tab(base(shared_app), session, new_address())
            seen = len(tab.events)
            await send_raw(tab, case.frame)
            refusal = await refusal_after(tab, seen)
            assert refusal["text"] == DANISH(case.key)
            assert refusal["id"] == case.echo
            assert not any(e["type"] == "received" for e in tab.events[seen:])
            await still_works(tab)
            await tab.close()
            chat_id = chat_id_of(session)
        # Only the good message was stored.
        assert await citizen_texts(shared_app, chat_id) == ["/hjaelp"]
        await nothing_unstorable(shared_app, chat_id)
        no_tracebacks(caplog)

    @pytest.mark.parametrize("case", ODD_BUT_FINE.values(), ids=ODD_BUT_FINE.keys())
    async def test_an_odd_but_readable_frame_is_cleaned_stored_and_answered(
        self, shared_app: BorgerDialog, caplog: pytest.LogCaptureFixture, case: Taken
    ) -> None:
        caplog.set_level(logging.INFO)
        async with web_session() as session:
            tab = await open_tab(base(shared_app), session, new_address())
            seen = len(tab.events)
            await send_raw(tab, case.frame)
            await eventually(
                lambda: any(
                    e["type"] == "received" and e["id"] == case.client_id for e in tab.events[seen:]
                ),
                what="the message acknowledged",
            )
            await eventually(lambda: tab.bot_texts(), what="an answer")
            await still_works(tab)
            await tab.close()
            chat_id = chat_id_of(session)
        assert (await citizen_texts(shared_app, chat_id))[0] == case.stored
        await nothing_unstorable(shared_app, chat_id)
        no_tracebacks(caplog)

    @pytest.mark.parametrize("payload", FORGED_PAYLOADS.values(), ids=FORGED_PAYLOADS.keys())
    async def test_a_forged_button_gets_a_polite_answer(
        self, shared_app: BorgerDialog, caplog: pytest.LogCaptureFixture, payload: str
    ) -> None:
        caplog.set_level(logging.INFO)
        async with web_session() as session:
            tab = await open_tab(base(shared_app), session, new_address())
            seen = len(tab.events)
            await send_raw(tab, button(payload, "1", "forged"))
            await eventually(
                lambda: any(
                    e["type"] == "received" and e["id"] == "forged" for e in tab.events[seen:]
                ),
                what="the tap acknowledged",
            )
            # The flows' answer: a notice (the button no longer works) or a message.
            answer = await eventually(
                lambda: [e for e in tab.events[seen:] if e["type"] in ("notice", "message")],
                what="a polite answer",
            )
            assert answer[0].get("text") or answer[0].get("message", {}).get("text")
            await still_works(tab)
            await tab.close()
        # The web layer itself logs nothing alarming; what a flow does with the payload is the
        # flows' business (another test file checks them strictly).
        web_records = [r for r in caplog.records if r.name.startswith(("bot.channels", "aiohttp"))]
        assert [r.getMessage() for r in web_records if r.exc_info] == []

    async def test_an_english_speaking_participant_is_refused_in_english(
        self, shared_app: BorgerDialog
    ) -> None:
        address = new_address()
        async with web_session() as session:
            async with session.get(f"{base(shared_app)}/chat", headers=address):
                pass
            socket = await session.ws_connect(
                f"{base(shared_app)}/chat/ws?lang=en-GB",
                headers={"Origin": base(shared_app), **address},
            )
            await socket.receive_json()  # the history
            await socket.send_str(text("hej \ud800", "e1"))
            refusal = await socket.receive_json()
            await socket.close()
        assert refusal == {
            "type": "error",
            "id": "e1",
            "text": Catalogs("da").texts("en")(UNREADABLE),
        }
        assert refusal["text"] != DANISH(UNREADABLE)

    async def test_a_frame_far_over_the_cap_closes_only_that_socket(
        self, shared_app: BorgerDialog, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with web_session() as session:
            address = new_address()
            tab = await open_tab(base(shared_app), session, address)
            await send_raw(tab, text("x" * 100_000, "huge"))
            assert tab.socket is not None
            await eventually(lambda: tab.socket is not None and tab.socket.closed, what="closed")
            assert tab.socket.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
            await tab.close()
            again = WebTab(base(shared_app), session)
            await again.open(headers=address)
            await still_works(again)
            await again.close()
            chat_id = chat_id_of(session)
        assert await citizen_texts(shared_app, chat_id) == ["/hjaelp"]
        no_tracebacks(caplog)

    async def test_a_message_sent_as_the_tab_closes_is_kept_and_answered(
        self, shared_app: BorgerDialog, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with web_session() as session:
            address = new_address()
            tab = await open_tab(base(shared_app), session, address)
            await tab.send({"type": "text", "text": "/hjaelp"}, client_id="last-words")
            await tab.close()
            assert tab.socket is not None
            # Frames after the close go nowhere, and nothing breaks on either side.
            with pytest.raises(ConnectionResetError):
                await tab.socket.send_str(text("for sent", "after-close"))
            again = WebTab(base(shared_app), session)
            await again.open(headers=address)
            await eventually(lambda: again.bot_texts(), what="the answer in the transcript")
            await again.close()
            chat_id = chat_id_of(session)
        assert await citizen_texts(shared_app, chat_id) == ["/hjaelp"]
        await nothing_unstorable(shared_app, chat_id)
        no_tracebacks(caplog)

    async def test_the_socket_refuses_a_missing_forged_or_expired_cookie_and_other_sites(
        self, shared_app: BorgerDialog
    ) -> None:
        signer = CookieSigner(SECRET.encode())
        old = datetime.now(UTC) - timedelta(seconds=MAX_AGE_SECONDS + 60)
        valid = signer.issue(datetime.now(UTC))
        participant = valid.split(".")[0]
        cookies = {
            "missing": None,
            "forged-signature": f"{participant}.{valid.split('.')[1]}.{'0' * 32}",
            "expired": signer.issue(old, participant),
            "other-secret": CookieSigner(b"someone else").issue(datetime.now(UTC)),
            "nul-in-cookie": f"{participant}\x00.1.2",
            "old-two-part-format": f"{participant}.{'0' * 32}",
        }
        for name, cookie in cookies.items():
            async with web_session() as session:
                if cookie is not None:
                    session.cookie_jar.update_cookies({COOKIE: cookie})
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(f"{base(shared_app)}/chat/ws", headers=new_address())
                assert refused.value.status == 403, name
        async with web_session() as session:
            session.cookie_jar.update_cookies({COOKIE: valid})
            with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
                await session.ws_connect(
                    f"{base(shared_app)}/chat/ws",
                    headers={"Origin": "https://evil.example", **new_address()},
                )
            assert foreign.value.status == 403

    async def test_an_expired_cookie_on_the_page_simply_makes_a_new_participant(
        self, shared_app: BorgerDialog
    ) -> None:
        signer = CookieSigner(SECRET.encode())
        now = datetime.now(UTC)
        expired = signer.issue(now - timedelta(seconds=MAX_AGE_SECONDS + 60))
        recent = signer.issue(now - timedelta(days=30))
        # The format before issue times were signed: participant.signature.
        legacy_participant = "L" * 24
        legacy_signature = hmac.new(
            SECRET.encode(), legacy_participant.encode(), hashlib.sha256
        ).hexdigest()[:32]
        for cookie, keeps in (
            (expired, False),
            (recent, True),
            (f"{legacy_participant}.{legacy_signature}", True),
        ):
            async with web_session() as session:
                session.cookie_jar.update_cookies({COOKIE: cookie})
                async with session.get(
                    f"{base(shared_app)}/chat", headers=new_address()
                ) as response:
                    assert response.status == 200
                    fresh = response.cookies[COOKIE].value
            assert fresh != cookie
            assert (fresh.split(".")[0] == cookie.split(".")[0]) is keeps
            # The new cookie carries a fresh issue time: it slides.
            assert abs(int(fresh.split(".")[1]) - now.timestamp()) < 3600

    async def test_too_many_sockets_from_one_address_or_one_cookie(
        self, shared_app: BorgerDialog, caplog: pytest.LogCaptureFixture
    ) -> None:
        address = new_address()
        sessions = [web_session() for _ in range(3)]
        tabs: list[WebTab] = []
        try:
            # One cookie: eight tabs, then a polite 429.
            first = sessions[0]
            tabs.append(await open_tab(base(shared_app), first, address))
            for _ in range(7):
                tab = WebTab(base(shared_app), first)
                await tab.open(headers=address)
                tabs.append(tab)
            with pytest.raises(aiohttp.WSServerHandshakeError) as per_cookie:
                await first.ws_connect(f"{base(shared_app)}/chat/ws", headers=address)
            assert per_cookie.value.status == 429
            # One address: twenty tabs in all, whatever the cookies.
            for session in sessions[1:]:
                tabs.append(await open_tab(base(shared_app), session, address))
                while len(tabs) < 20 and len([t for t in tabs if t.session is session]) < 8:
                    tab = WebTab(base(shared_app), session)
                    await tab.open(headers=address)
                    tabs.append(tab)
            assert len(tabs) == 20
            async with web_session() as stranger:
                async with stranger.get(f"{base(shared_app)}/chat", headers=address) as page:
                    assert page.status == 200
                with pytest.raises(aiohttp.WSServerHandshakeError) as per_address:
                    await stranger.ws_connect(f"{base(shared_app)}/chat/ws", headers=address)
                assert per_address.value.status == 429
            # The tabs already open keep working, and closing one makes room again.
            await still_works(tabs[-1])
            await tabs.pop().close()

            async def reopened() -> bool:
                again = WebTab(base(shared_app), sessions[2])
                try:
                    await again.open(headers=address)
                except aiohttp.WSServerHandshakeError:
                    return False  # the server has not yet seen the close
                tabs.append(again)
                return True

            await eventually(reopened, what="room for a new tab")
            await eventually(lambda: any(e["type"] == "history" for e in tabs[-1].events))
        finally:
            for tab in tabs:
                await tab.close()
            for session in sessions:
                await session.close()
        no_tracebacks(caplog)

    async def test_many_cookies_from_one_address_share_one_message_budget(
        self, shared_app: BorgerDialog, caplog: pytest.LogCaptureFixture
    ) -> None:
        address = new_address()
        sessions = [web_session() for _ in range(6)]
        tabs: list[WebTab] = []
        try:
            for session in sessions:
                tabs.append(await open_tab(base(shared_app), session, address))
            # Each cookie alone stays under its own limit (30 at once), but together they
            # pass the address's (60 at once, then 6 a second): 150 messages go past it unless
            # the server takes over 15 s to read them, however loaded the machine.
            for round_number in range(25):
                for tab in tabs:
                    await tab.send({"type": "text", "text": f"besked {round_number}"})
            limited = DANISH("web.rate_limited")
            await eventually(
                lambda: any(e.get("text") == limited for tab in tabs for e in tab.events),
                what="the address's limit",
            )
            # A refusal names the message, so the page drops it instead of resending it.
            assert all(
                e["id"].startswith("c") for tab in tabs for e in tab.events if e["type"] == "error"
            )
            # Every frame answered (stored or refused), then the budget refills: the same
            # sockets are answered again a moment later.
            await eventually(
                lambda: all(
                    sum(e["type"] in ("received", "error") for e in tab.events) >= 25
                    for tab in tabs
                ),
                what="every frame answered",
            )
            await asyncio.sleep(0.5)
            await still_works(tabs[0])
        finally:
            for tab in tabs:
                await tab.close()
            for session in sessions:
                await session.close()
        no_tracebacks(caplog)

    async def test_new_cookies_per_address_are_capped_politely(
        self, shared_app: BorgerDialog
    ) -> None:
        address = new_address()
        statuses = []
        for _ in range(25):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base(shared_app)}/chat", headers=address) as response,
            ):
                statuses.append((response.status, await response.text()))
        assert [status for status, _ in statuses[:20]] == [200] * 20
        status, body = statuses[-1]
        assert status == 429
        assert body == DANISH("web.too_many_visitors")
        # Someone who already has a cookie from that address still gets in.
        async with web_session() as session:
            async with session.get(f"{base(shared_app)}/chat", headers=new_address()):
                pass
            async with session.get(f"{base(shared_app)}/chat", headers=address) as response:
                assert response.status == 200

    async def test_forwarded_for_counts_only_the_address_the_proxy_saw(
        self, shared_app: BorgerDialog
    ) -> None:
        address = new_address()["X-Forwarded-For"]
        # A client can claim anything in front; the proxy appends what it saw, last.
        for claimed in range(25):
            async with aiohttp.ClientSession() as session:
                header = {"X-Forwarded-For": f"192.0.2.{claimed}, {address}"}
                async with session.get(f"{base(shared_app)}/chat", headers=header) as response:
                    last = response.status
        assert last == 429

    @pytest.mark.parametrize(
        "path",
        ["/chat", "/healthz", "/chat/static/chat.js", "/chat/static/nope.js", "/chat/embed.js"],
        ids=["page", "health", "script", "missing-file", "embed-snippet"],
    )
    async def test_security_headers_on_every_response(
        self, shared_app: BorgerDialog, path: str
    ) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base(shared_app)}{path}", headers=new_address()) as response,
        ):
            headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        # Plain HTTP here: HSTS only comes with an https public address.
        assert "Strict-Transport-Security" not in headers
        policy = headers["Content-Security-Policy"]
        port = shared_app.settings.http_port
        assert f"connect-src 'self' ws://127.0.0.1:{port}/chat/ws;" in policy
        assert "wss:;" not in policy
        assert "ws:;" not in policy
        for directive in ("object-src 'none'", "base-uri 'none'", "form-action 'none'"):
            assert directive in policy
        if path == "/chat":
            assert f"frame-ancestors http://127.0.0.1:{port}" in policy
        else:
            assert "frame-ancestors 'none'" in policy


@pytest.fixture
async def https_settings_app(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[BorgerDialog]:
    application = BorgerDialog(
        make_settings(
            public_url="https://chat.example.dk", web_allowed_origins="https://www.kommune.dk"
        )
    )
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_embedded_page_over_https_sets_a_partitioned_cookie(
    https_settings_app: BorgerDialog,
) -> None:
    # The app is reached over plain HTTP here; the public address says HTTPS (as behind a
    # proxy), which is what makes the page set the partitioned cookie.
    local = f"http://127.0.0.1:{https_settings_app.settings.http_port}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{local}/chat?embed=1&c=friluftsliv") as response,
    ):
        assert response.status == 200
        (cookie,) = response.headers.getall("Set-Cookie")
        headers = response.headers
    assert cookie.startswith(f"{COOKIE}=")
    attributes = [part.strip() for part in cookie.split(";")[1:]]
    assert attributes == [
        "Path=/",
        f"Max-Age={MAX_AGE_SECONDS}",
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Partitioned",
    ]
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    policy = headers["Content-Security-Policy"]
    assert "connect-src 'self' wss://chat.example.dk/chat/ws;" in policy
    assert "frame-ancestors https://chat.example.dk https://www.kommune.dk" in policy


# A handful of cases on both databases: what PostgreSQL refuses to store is the point.
BOTH_DATABASES = {
    "nul-inside-text": (text("hej\x00 med dig", "p1"), None),
    "lone-surrogate": (text("hej \ud800", "p1"), UNREADABLE),
    "deep-json": (DEEP, UNREADABLE),
    "forged-payload": (button("vote:999999999999999999999:agree", "1" * 18, "p1"), None),
    "unicode-digit-message-ref": (button("f:n", "²", "p1"), STALE),
}


@pytest.fixture
async def app(make_settings: Callable[..., Settings]) -> AsyncIterator[BorgerDialog]:
    application = BorgerDialog(make_settings())
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.mark.parametrize("case", BOTH_DATABASES.values(), ids=BOTH_DATABASES.keys())
async def test_on_both_databases(
    app: BorgerDialog, caplog: pytest.LogCaptureFixture, case: tuple[str, str | None]
) -> None:
    raw, key = case
    async with web_session() as session:
        tab = await open_tab(base(app), session)
        seen = len(tab.events)
        await send_raw(tab, raw)
        if key is not None:
            refusal = await refusal_after(tab, seen)
            assert refusal["text"] == DANISH(key)
        else:
            await eventually(
                lambda: [e for e in tab.events[seen:] if e["type"] in ("notice", "message")],
                what="an answer",
            )
        await still_works(tab)
        await tab.close()
        chat_id = chat_id_of(session)
    await nothing_unstorable(app, chat_id)
    no_tracebacks(caplog)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_rotated_secret_keeps_participants_until_their_next_visit(
    make_settings: Callable[..., Settings],
) -> None:
    now = datetime.now(UTC)
    old_cookie = CookieSigner(b"the old secret").issue(now - timedelta(days=10))
    participant = old_cookie.split(".")[0]
    application = BorgerDialog(
        make_settings(web_secret="the new secret", web_previous_secret="the old secret")
    )
    await application.start()
    try:
        async with web_session() as session:
            session.cookie_jar.update_cookies({COOKIE: old_cookie})
            # The socket still takes the old signature …
            tab = WebTab(base(application), session)
            await tab.open()
            await still_works(tab)
            await tab.close()
            # … and the page re-signs it with the new secret, for the same participant.
            async with session.get(f"{base(application)}/chat") as response:
                fresh = response.cookies[COOKIE].value
        assert fresh.split(".")[0] == participant
        assert CookieSigner(b"the new secret").verify(fresh, now) == participant
        assert CookieSigner(b"the old secret").verify(fresh, now) is None
    finally:
        await application.stop()


def test_limit_state_stays_bounded() -> None:
    clock = [0.0]
    buckets = TokenBuckets(burst=3, per_second=1, max_keys=100, clock=lambda: clock[0])
    for number in range(10_000):
        buckets.take(f"address {number}")
    assert len(buckets) == 100
    # A bucket that has refilled is forgotten as soon as anything else happens.
    clock[0] += 10
    buckets.take("someone new")
    assert len(buckets) == 1
    # Forgetting a full bucket changes nothing for its owner.
    assert [buckets.take("someone new") for _ in range(3)] == [True, True, False]
    counts = OpenCounts(limit=2)
    counts.opened("a")
    counts.opened("a")
    assert not counts.has_room("a")
    counts.closed("a")
    counts.closed("a")
    assert counts.has_room("a")
    assert len(counts) == 0


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "counted"),
    [
        ("203.0.113.7", "198.51.100.1", False, "203.0.113.7"),
        ("10.0.0.1", "198.51.100.1", True, "198.51.100.1"),
        ("10.0.0.1", "1.2.3.4, 198.51.100.1", True, "198.51.100.1"),
        ("10.0.0.1", "", True, "10.0.0.1"),
        ("2001:db8:1:2:3:4:5:6", "", False, "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "", False, "203.0.113.7"),
        ("10.0.0.1", "not an address\x00", True, "not an address\x00"),
    ],
    ids=["peer", "trusted-proxy", "claimed-then-seen", "no-header", "ipv6-64", "mapped", "junk"],
)
def test_the_address_limits_count(peer: str, forwarded: str, trusted: bool, counted: str) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("GET", "/chat", headers=headers)
    with patch.object(type(request), "remote", new=peer):
        assert client_address(request, trusted) == counted
