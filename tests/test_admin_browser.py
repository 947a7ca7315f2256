"""The dashboard in a real browser (Debian's Chromium through Playwright) under its real CSP:
logging in through the form, each role's navigation, and axe-core on every page of the door."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.app import BorgerDialog
from bot.config import Settings
from tests.axe import assert_accessible
from tests.dashboard import BROWSER_DATABASE, PASSWORD, ROLE_EMAILS, add_staff


@pytest.fixture
async def dashboard_app(make_settings: Callable[..., Settings]) -> AsyncIterator[BorgerDialog]:
    application = BorgerDialog(make_settings())
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


async def browser_login(browser: Any, app: BorgerDialog, role: str, locale: str = "da-DK") -> Any:
    """A page logged in as ``role`` through the login form, typed as a person would."""
    await add_staff(app, ROLE_EMAILS[role], role)
    context = await browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{app.settings.public_base_url}/admin")
    await page.get_by_label("E-mail").fill(ROLE_EMAILS[role])
    await page.get_by_label("Adgangskode" if locale.startswith("da") else "Password").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{app.settings.public_base_url}/admin")
    return page


@BROWSER_DATABASE
async def test_login_page_and_overview_pass_axe(browser: Any, dashboard_app: BorgerDialog) -> None:
    context = await browser.new_context(locale="da-DK")
    page = await context.new_page()
    await page.goto(f"{dashboard_app.settings.public_base_url}/admin/login")
    await assert_accessible(page)
    await context.close()
    page = await browser_login(browser, dashboard_app, "admin")
    assert await page.get_by_role("heading", level=1).inner_text() == "Oversigt"
    await assert_accessible(page)
    await page.get_by_role("button", name="Log ud").click()
    await page.wait_for_url("**/admin/login?why=logged-out")
    await page.get_by_role("status").filter(has_text="Du er logget ud.").wait_for()
    await assert_accessible(page)
    await page.context.close()


async def test_the_accessibility_check_can_fail(browser: Any) -> None:
    """A field without a label and an image without text are caught: the check is not blind."""
    page = await browser.new_page()
    await page.set_content(
        '<!doctype html><html lang="da"><head><title>x</title></head><body><main>'
        '<h1>Prøve</h1><input type="text"><img src="x.png"></main></body></html>'
    )
    with pytest.raises(AssertionError) as failed:
        await assert_accessible(page)
    assert "label" in str(failed.value)
    assert "image-alt" in str(failed.value)
    await page.close()


@BROWSER_DATABASE
async def test_accounts_audit_and_password_pages_pass_axe(
    browser: Any, dashboard_app: BorgerDialog
) -> None:
    page = await browser_login(browser, dashboard_app, "admin")
    base = dashboard_app.settings.public_base_url
    await page.get_by_role("link", name="Konti").click()
    await page.wait_for_url(f"{base}/admin/accounts")
    await assert_accessible(page)
    # Add a moderator the way an admin would, with the keyboard and the form's labels.
    await page.get_by_label("E-mail").fill("ny@kommune.dk")
    await page.get_by_label("Rolle", exact=True).select_option("moderator")
    await page.get_by_label("Første adgangskode").fill(PASSWORD)
    await page.get_by_role("button", name="Opret konto").click()
    await page.get_by_text("Kontoen er oprettet.").wait_for()
    await assert_accessible(page)
    await page.get_by_role("link", name="Revisionslog").click()
    await page.wait_for_url(f"{base}/admin/audit")
    assert await page.get_by_role("cell", name="Konto oprettet", exact=True).count() == 1
    await assert_accessible(page)
    await page.get_by_role("link", name="Skift adgangskode").click()
    await assert_accessible(page)
    await page.context.close()
    page = await browser_login(browser, dashboard_app, "moderator")
    await page.goto(f"{base}/admin/accounts")
    assert await page.get_by_role("heading", level=1).inner_text() == "Ikke for din rolle"
    await assert_accessible(page)
    await page.context.close()
