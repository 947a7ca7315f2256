"""Driving the dashboard under /admin as a person with a browser would: an account of a role,
logged in through the real login form, with the session cookie and the forms' CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from bot.admin.accounts import add_account, hash_password
from bot.app import BorgerDialog

PASSWORD = "korrekt hest batteri"
# The dashboard's browser tests are about the pages, on SQLite; what differs between the
# databases (decisions, races, limits, sessions) is tested over HTTP on both.
BROWSER_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ROLE_EMAILS = {
    "admin": "ada@kommune.dk",
    "staff": "sofie@kommune.dk",
    "moderator": "mads@kommune.dk",
}


def csrf_of(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


async def add_staff(app: BorgerDialog, email: str, role: str) -> None:
    assert app.uow is not None
    password_hash = await hash_password(PASSWORD)  # before the unit of work, as the dashboard
    async with app.uow() as uow:
        if await uow.staff.by_email(email) is None:
            await add_account(uow, email, role, password_hash, app.clock())
        await uow.commit()


def new_session(app: BorgerDialog, language: str = "da") -> aiohttp.ClientSession:
    """A cookie-keeping client, like a browser that prefers ``language``."""
    preferred = "da-DK,da;q=0.9,en;q=0.5" if language == "da" else "en-GB,en;q=0.9"
    return aiohttp.ClientSession(
        base_url=app.settings.public_base_url,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"Accept-Language": preferred},
    )


async def login(
    session: aiohttp.ClientSession, email: str, password: str = PASSWORD
) -> tuple[aiohttp.ClientResponse, str]:
    """Fill in and send the login form; the answer (not followed) and its text."""
    async with session.get("/admin/login") as page:
        token = csrf_of(await page.text())
    response = await session.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf": token},
        allow_redirects=False,
    )
    return response, await response.text()


@asynccontextmanager
async def logged_in(
    app: BorgerDialog, role: str, language: str = "da"
) -> AsyncIterator[aiohttp.ClientSession]:
    """A client logged in with an account of ``role`` (created when missing)."""
    email = ROLE_EMAILS[role]
    await add_staff(app, email, role)
    async with new_session(app, language) as session:
        response, _ = await login(session, email)
        assert response.status == 303, response.status
        yield session


async def post_form(
    session: aiohttp.ClientSession, page_path: str, action: str, data: dict[str, str]
) -> aiohttp.ClientResponse:
    """Open a page, take its form's CSRF token and post ``data`` to ``action`` (not followed)."""
    async with session.get(page_path) as page:
        assert page.status == 200, (page_path, page.status)
        token = csrf_of(await page.text())
    return await session.post(action, data={**data, "csrf": token}, allow_redirects=False)
