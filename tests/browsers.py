"""The browser tests' Chromium (Debian's, driven by Playwright) and a phone-sized page of the web
chat; the fixtures ``browser`` and ``demo_app`` are in conftest.py."""

from __future__ import annotations

import os
from typing import Any

from bot.app import BorgerDialog

ORGANISATION = "Aarhus Kommune"
CHROMIUM = os.environ.get("BORGERDIALOG_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def open_page(browser: Any, app: BorgerDialog) -> Any:
    # bypass_csp lets the test's own probes run; the page keeps its policy for citizens.
    context = await browser.new_context(
        viewport={"width": 320, "height": 700}, locale="da-DK", bypass_csp=True
    )
    page = await context.new_page()
    await page.goto(f"{app.settings.public_base_url}/chat?c=friluftsliv")
    return page
