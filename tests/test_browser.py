"""A citizen in a real browser (Debian's Chromium, driven by Playwright): keyboard only."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app import BorgerDialog
from bot.config import Settings
from bot.consultations.demo import ensure_demo
from tests.browsers import open_page
from tests.exports import export_rows
from tests.postgres import free_port


async def focused(page: Any) -> str:
    return str(
        await page.evaluate("document.activeElement.textContent || document.activeElement.id")
    )


async def enter_when_focused(page: Any, label: str) -> None:
    """Wait until keyboard focus is on the control with this label, then press Enter."""
    await page.wait_for_function(
        "label => document.activeElement && document.activeElement.textContent === label", arg=label
    )
    await page.keyboard.press("Enter")


async def type_answer(page: Any, text: str) -> None:
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'input'")
    await page.keyboard.type(text)
    await page.keyboard.press("Enter")


async def test_a_citizen_completes_the_demo_with_the_keyboard_only(
    browser: Any, demo_app: BorgerDialog
) -> None:
    page = await open_page(browser, demo_app)
    assert await page.evaluate("document.documentElement.lang") == "da"
    await enter_when_focused(page, "Ja, jeg giver samtykke")
    await enter_when_focused(page, "Under 25")
    await enter_when_focused(page, "Nord")
    await enter_when_focused(page, "☐ Går tur")
    await page.get_by_role("button", name="☑ Går tur").wait_for()
    await page.wait_for_function("document.activeElement.textContent === '☑ Går tur'")
    for _ in range(4):
        await page.keyboard.press("Tab")
    await enter_when_focused(page, "Færdig")
    await enter_when_focused(page, "1")
    await enter_when_focused(page, "Ja")
    await type_answer(page, "Ved skoven bag hallen")
    await type_answer(page, "12")
    await type_answer(page, "8000")
    await type_answer(page, "Flere bænke langs åen")
    await page.get_by_text("Tak for dine svar til »Ny friluftspolitik«!").wait_for()
    await enter_when_focused(page, "Ja")
    await page.get_by_text("✅ Vi giver dig besked her.").wait_for()
    # The demo has an ideas phase: write a statement and vote, still with the keyboard alone.
    await enter_when_focused(page, "✍️ Skriv et udsagn")
    await type_answer(page, "Skraldespandene ved søen skal tømmes oftere")
    await enter_when_focused(page, "✅ Send")
    await page.get_by_text("Tak! Dit udsagn er nu med blandt dem, andre stemmer om.").wait_for()
    await page.keyboard.press("Tab")
    await enter_when_focused(page, "🗳 Stem om udsagn")
    await enter_when_focused(page, "👍 Enig")
    await page.get_by_text("✅ Din stemme: enig").wait_for()
    (row,) = await export_rows(demo_app)
    assert row["channel"] == "web"
    assert row["status"] == "completed"
    assert row["activities"] == "Går tur"
    assert row["idea"] == "Flere bænke langs åen"


async def test_a_reload_resumes_and_mydata_shows_the_answers(
    browser: Any, demo_app: BorgerDialog
) -> None:
    page = await open_page(browser, demo_app)
    await enter_when_focused(page, "Ja, jeg giver samtykke")
    await page.wait_for_function("document.activeElement.textContent === 'Under 25'")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await enter_when_focused(page, "65 eller derover")
    await page.get_by_text("2/9 · Hvor i kommunen bor du?").wait_for()
    await page.reload()
    # The conversation is back, and focus is where the citizen left off.
    await page.get_by_text("✅ 65 eller derover").wait_for()
    await page.wait_for_function("document.activeElement.textContent === 'Nord'")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await enter_when_focused(page, "Syd")
    await page.get_by_text("3/9 · Hvad laver du i naturen?").wait_for()
    await page.get_by_role("button", name="Mine data", exact=True).click()
    await page.get_by_text("Det har vi gemt om dig").wait_for()
    text = await page.locator("#log").inner_text()
    # The shortcut writes the Danish command in the citizen's bubble, as they would type it.
    assert "/minedata" in await page.locator("#log .message.citizen").last.inner_text()
    assert "Hvor gammel er du?: 65 eller derover" in text
    assert "Hvor i kommunen bor du?: Syd" in text
    await page.get_by_role("link", name="Hent mine-data.json").wait_for()
    # Erasing everything leaves only the message that says so: no answer, no data and no
    # button of the erased conversation stays on screen (as after a reload).
    await page.get_by_role("button", name="Slet mine data", exact=True).click()
    await page.get_by_role("button", name="Ja, slet", exact=True).click()
    await page.get_by_text("Dine oplysninger og svar er slettet.").wait_for()
    await page.wait_for_function("document.querySelectorAll('#log .message').length === 1")
    assert await page.locator("#log button").count() == 0
    assert "65 eller derover" not in await page.locator("#log").inner_text()


async def test_a_telegram_citizen_and_a_browser_citizen_share_one_export(
    browser: Any,
    fake_telegram: Any,
    fake_bot: Any,
    make_settings: Callable[..., Settings],
) -> None:
    from tests.citizens import Citizen

    app = BorgerDialog(
        make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    )
    await app.start()
    try:
        assert app.uow is not None
        async with app.uow() as uow:
            await ensure_demo(uow, datetime.now(UTC), app.settings.zone)
            await uow.commit()
        on_telegram = Citizen(fake_bot, 501)
        await on_telegram.write("/start friluftsliv", new=2)
        await on_telegram.tap("Ja, jeg giver samtykke")
        await on_telegram.tap("25-64")
        page = await open_page(browser, app)
        await enter_when_focused(page, "Ja, jeg giver samtykke")
        await enter_when_focused(page, "Under 25")
        await page.get_by_text("2/9 · Hvor i kommunen bor du?").wait_for()
        rows = await export_rows(app)
    finally:
        await app.stop()
    assert sorted((row["channel"], row["age_band"]) for row in rows) == [
        ("telegram", "25-64"),
        ("web", "Under 25"),
    ]


CONTRAST_PROBE = """
() => {
  const channels = (color) => color.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const c = channels(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const selectors = ["h1", ".menu button", ".message.bot", ".message.citizen",
                     ".buttons button", ".composer label", ".composer input",
                     ".composer button", ".status"];
  const results = [];
  for (const selector of selectors) {
    for (const element of document.querySelectorAll(selector)) {
      const fg = luminance(channels(getComputedStyle(element).color));
      const bg = luminance(background(element));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      results.push([selector, Math.round(ratio * 100) / 100]);
    }
  }
  return results;
}
"""


async def test_text_contrast_meets_wcag_aa_as_rendered(
    browser: Any, demo_app: BorgerDialog
) -> None:
    page = await open_page(browser, demo_app)
    await enter_when_focused(page, "Ja, jeg giver samtykke")
    await page.get_by_role("button", name="Under 25").wait_for()
    await page.keyboard.type("hej")  # a citizen message on screen too
    await page.keyboard.press("Tab")
    results = await page.evaluate(CONTRAST_PROBE)
    measured = {selector for selector, _ratio in results}
    assert {"h1", ".message.bot", ".buttons button", ".composer input"} <= measured
    too_low = [(selector, ratio) for selector, ratio in results if ratio < 4.5]
    assert too_low == []


def throwaway_certificate(folder: Path) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, made with the openssl command line."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_the_chat_embedded_in_another_site_works_over_https(
    browser: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A municipality's page (another site) embeds the chat, served over TLS, with embed.js.

    Inside a cross-site iframe the participant cookie must be SameSite=None, Secure and
    Partitioned; without it the socket is refused and the intro never appears.
    """
    tls_port, embedder_port = free_port(), free_port()
    embedder = f"http://localhost:{embedder_port}"
    app = BorgerDialog(
        make_settings(public_url=f"https://127.0.0.1:{tls_port}", web_allowed_origins=embedder)
    )
    await app.start()
    # The same application also on a TLS port: what a citizen reaches through the public URL.
    assert app._web is not None
    tls_site = web.TCPSite(
        app._web._runner, "127.0.0.1", tls_port, ssl_context=throwaway_certificate(tmp_path)
    )
    await tls_site.start()
    municipality = web.Application()

    async def home(_request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            text=(
                "<!doctype html><html lang=da><title>Kommunen</title><h1>Kommunen</h1>"
                '<div id="borgerdialog"></div><script '
                f'src="https://127.0.0.1:{tls_port}/chat/embed.js" data-c="friluftsliv">'
                "</script>"
            ),
        )

    municipality.router.add_get("/", home)
    runner = web.AppRunner(municipality, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "localhost", embedder_port).start()
    context = await browser.new_context(locale="da-DK", ignore_https_errors=True)
    try:
        assert app.uow is not None
        async with app.uow() as uow:
            await ensure_demo(uow, datetime.now(UTC), app.settings.zone)
            await uow.commit()
        page = await context.new_page()
        await page.goto(f"{embedder}/")
        chat = page.frame_locator("iframe")
        await chat.get_by_text("Ny friluftspolitik").first.wait_for()
        await chat.get_by_role("button", name="Ja, jeg giver samtykke").click()
        await chat.get_by_role("button", name="Under 25").wait_for()
        await chat.get_by_role("button", name="Under 25").click()
        await chat.get_by_text("✅ Under 25").wait_for()
        # A reload keeps the same participant: the partitioned cookie came back.
        await page.reload()
        await chat.get_by_text("✅ Under 25").wait_for()
        cookies = [c for c in await context.cookies() if c["name"] == "borgerdialog_id"]
        assert [(c["secure"], c["sameSite"], c["httpOnly"]) for c in cookies] == [
            (True, "None", True)
        ]
        (row,) = await export_rows(app)
        assert row["channel"] == "web"
        assert row["age_band"] == "Under 25"
    finally:
        await context.close()
        await runner.cleanup()
        await app.stop()


async def test_a_refused_message_leaves_the_queue_and_later_ones_go_through(
    browser: Any, demo_app: BorgerDialog
) -> None:
    """A message the server refuses is shown as not sent, never resent, and blocks nothing."""
    page = await open_page(browser, demo_app)
    await page.get_by_role("button", name="Ja, jeg giver samtykke").wait_for()
    # What an older page could have left queued: a lone surrogate, which cannot be stored.
    await page.evaluate(
        """() => sessionStorage.setItem("borgerdialog-pending", JSON.stringify(
             [{id: "poisoned", type: "text", text: "hej \\ud800"}]))"""
    )
    sockets: list[Any] = []
    page.on("websocket", lambda socket: sockets.append(socket))
    await page.reload()
    await page.get_by_text("Ikke sendt: »hej").wait_for()
    await page.get_by_text("Beskeden kunne ikke læses. Prøv at skrive den igen.").first.wait_for()
    assert await page.evaluate("sessionStorage.getItem('borgerdialog-pending')") == "[]"
    # The next message goes through on the same connection.
    await page.fill("#input", "")
    await page.get_by_role("button", name="Mine data", exact=True).click()
    await page.get_by_text("Det har vi gemt om dig").wait_for()
    assert len(sockets) == 1
