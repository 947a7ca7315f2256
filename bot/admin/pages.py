"""The dashboard's pages under /admin: login, logout and the overview (more pages come later).

Server-rendered, no JavaScript. Every form carries a CSRF token tied to a cookie: before login
the pre-session cookie, after it the session cookie; the cookie is SameSite=Strict as well, but
the token also holds where SameSite is not honoured.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from html import escape

from aiohttp import web

from bot.admin.accounts import (
    ABSOLUTE_TIMEOUT,
    account_pseudonym,
    address_hash,
    audit,
    current_session,
    log_in,
)
from bot.channels.webchat.limits import client_address
from bot.config import Settings
from bot.dialogue.i18n import BoundTexts, Catalogs, supported_language
from storage.models import StaffAccount
from storage.uow import UnitOfWorkFactory

logger = logging.getLogger(__name__)

PREFIX = "/admin"
LOGIN = f"{PREFIX}/login"
SESSION_COOKIE = "bd_admin"
PRE_SESSION_COOKIE = "bd_admin_pre"
ROLE_KEYS = {
    "admin": "admin.role.admin",
    "staff": "admin.role.staff",
    "moderator": "admin.role.moderator",
}


def page_language(accept_language: str | None, default: str) -> str:
    """The first supported language the browser asks for, else the default."""
    for part in (accept_language or "").split(","):
        language = supported_language(part.split(";")[0].strip() or None)
        if language is not None:
            return language
    return default


class AdminPages:
    """Login, logout and the overview, on the application's storage and clock."""

    def __init__(
        self,
        settings: Settings,
        uow: UnitOfWorkFactory,
        catalogs: Catalogs,
        clock: Callable[[], datetime],
        secret: bytes,
        pseudonym_key: bytes,
    ) -> None:
        self._uow = uow
        self._catalogs = catalogs
        self._clock = clock
        self._default_language = settings.default_language
        self._secure = settings.public_base_url.startswith("https://")
        self._trusted_proxy = settings.trusted_proxy
        # Separate keys from one secret: a CSRF token says nothing about an address hash.
        self._csrf_key = hmac.digest(secret, b"admin csrf tokens", "sha256")
        self._address_key = hmac.digest(secret, b"admin login addresses", "sha256")
        self._pseudonym_key = pseudonym_key

    def add_routes(self, app: web.Application) -> None:
        """Serve the pages; every other /admin address needs a session too."""
        app.router.add_get(LOGIN, self.login_page)
        app.router.add_post(LOGIN, self.login)
        app.router.add_post(f"{PREFIX}/logout", self.logout)
        app.router.add_get(PREFIX, self.overview)
        app.router.add_route("*", PREFIX + "/{rest:.*}", self.elsewhere)

    # -- pages -----------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.Response:
        """The login form, with a fresh pre-session cookie when the browser has none."""
        return self._login_form(request, message=None, status=200)

    async def login(self, request: web.Request) -> web.Response:
        """Check the form's CSRF token, then the e-mail and password against the limits."""
        pre = request.cookies.get(PRE_SESSION_COOKIE)
        form = await request.post()
        if not pre or not self._token_matches("login", pre, form.get("csrf")):
            return self._refused(request)
        t = self._texts(request)
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        now = self._clock()
        async with self._uow() as uow:
            result = await log_in(uow, email, password, self._address(request), now)
            if result.account is not None and result.outcome in ("ok", "locked"):
                if result.outcome == "ok":
                    await audit(uow, "staff_login", result.account, self._pseudonym_key, now)
                elif result.locked_now:
                    await audit(uow, "staff_lockout", result.account, self._pseudonym_key, now)
            await uow.commit()
        if result.outcome == "ok":
            assert result.account is not None
            assert result.token is not None
            logger.info("dashboard login by %s", self._pseudonym(result.account))
            response = web.HTTPSeeOther(PREFIX)
            response.set_cookie(
                SESSION_COOKIE,
                result.token,
                path=PREFIX,
                max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
                httponly=True,
                samesite="Strict",
                secure=self._secure,
            )
            response.del_cookie(PRE_SESSION_COOKIE, path=PREFIX)
            self._no_store(response)
            raise response
        if result.locked_now:
            assert result.account is not None
            logger.warning("dashboard account %s locked", self._pseudonym(result.account))
        messages = {
            "wrong": (t("admin.login.failed"), 401),
            "locked": (t("admin.login.locked"), 429),
            "throttled": (t("admin.login.throttled"), 429),
        }
        message, status = messages[result.outcome]
        return self._login_form(request, message=message, status=status)

    async def logout(self, request: web.Request) -> web.Response:
        """End the session (with the form's CSRF token) and go back to the login page."""
        token = request.cookies.get(SESSION_COOKIE)
        form = await request.post()
        if not token or not self._token_matches("session", token, form.get("csrf")):
            return self._refused(request)
        now = self._clock()
        async with self._uow() as uow:
            found = await current_session(uow, token, now)
            if found is not None:
                session, account = found
                await uow.staff.end_session(session)
                await audit(uow, "staff_logout", account, self._pseudonym_key, now)
                logger.info("dashboard logout by %s", self._pseudonym(account))
            await uow.commit()
        response = web.HTTPSeeOther(LOGIN)
        response.del_cookie(SESSION_COOKIE, path=PREFIX)
        raise response

    async def overview(self, request: web.Request) -> web.Response:
        """Who is logged in, in which role; the dashboard's real pages come later."""
        account = await self._account(request)
        t = self._texts(request)
        token = request.cookies.get(SESSION_COOKIE, "")
        who = t("admin.overview.who", email=account.email, role=t(ROLE_KEYS[account.role]))
        body = (
            f"<h1>{escape(t('admin.overview.title'))}</h1>\n"
            f"<p>{escape(who)}</p>\n"
            f"<p>{escape(t('admin.overview.coming'))}</p>\n"
            f'<form method="post" action="{PREFIX}/logout">\n'
            f'<input type="hidden" name="csrf" value="{self._token("session", token)}">\n'
            f'<button type="submit">{escape(t("admin.logout"))}</button>\n</form>'
        )
        return self._page(t, t("admin.overview.title"), body, 200)

    async def elsewhere(self, request: web.Request) -> web.Response:
        """Any other /admin address: the login page without a session, else not found (yet)."""
        await self._account(request)
        raise web.HTTPNotFound()

    # -- helpers ---------------------------------------------------------------------------

    async def _account(self, request: web.Request) -> StaffAccount:
        """The logged-in account, or a redirect to the login page."""
        async with self._uow() as uow:
            found = await current_session(uow, request.cookies.get(SESSION_COOKIE), self._clock())
            await uow.commit()  # the session's last_seen, or its end when it expired
        if found is None:
            raise web.HTTPSeeOther(LOGIN)
        return found[1]

    def _login_form(
        self, request: web.Request, *, message: str | None, status: int
    ) -> web.Response:
        t = self._texts(request)
        pre = request.cookies.get(PRE_SESSION_COOKIE) or secrets.token_urlsafe(24)
        alert = f'<p role="alert">{escape(message)}</p>\n' if message else ""
        body = (
            f"<h1>{escape(t('admin.login.title'))}</h1>\n{alert}"
            f'<form method="post" action="{LOGIN}">\n'
            f'<input type="hidden" name="csrf" value="{self._token("login", pre)}">\n'
            f'<p><label for="email">{escape(t("admin.login.email"))}</label>\n'
            '<input id="email" name="email" type="email" autocomplete="username" required></p>\n'
            f'<p><label for="password">{escape(t("admin.login.password"))}</label>\n'
            '<input id="password" name="password" type="password" '
            'autocomplete="current-password" required></p>\n'
            f'<button type="submit">{escape(t("admin.login.submit"))}</button>\n</form>'
        )
        response = self._page(t, t("admin.login.title"), body, status)
        if request.cookies.get(PRE_SESSION_COOKIE) != pre:
            response.set_cookie(
                PRE_SESSION_COOKIE,
                pre,
                path=PREFIX,
                httponly=True,
                samesite="Strict",
                secure=self._secure,
            )
        return response

    def _refused(self, request: web.Request) -> web.Response:
        t = self._texts(request)
        body = (
            f"<h1>{escape(t('admin.refused'))}</h1>\n"
            f'<p><a href="{LOGIN}">{escape(t("admin.login.title"))}</a></p>'
        )
        return self._page(t, t("admin.refused"), body, 403)

    def _page(self, t: BoundTexts, title: str, body: str, status: int) -> web.Response:
        html = (
            f'<!doctype html>\n<html lang="{t.language}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            "</body>\n</html>\n"
        )
        response = web.Response(status=status, text=html, content_type="text/html")
        self._no_store(response)
        return response

    @staticmethod
    def _no_store(response: web.StreamResponse) -> None:
        # Pages behind a login must not stay in a shared computer's cache.
        response.headers["Cache-Control"] = "no-store"

    def _texts(self, request: web.Request) -> BoundTexts:
        language = page_language(request.headers.get("Accept-Language"), self._default_language)
        return self._catalogs.texts(language)

    def _token(self, purpose: str, cookie: str) -> str:
        return hmac.new(self._csrf_key, f"{purpose}:{cookie}".encode(), hashlib.sha256).hexdigest()

    def _token_matches(self, purpose: str, cookie: str, given: object) -> bool:
        return isinstance(given, str) and hmac.compare_digest(self._token(purpose, cookie), given)

    def _address(self, request: web.Request) -> str:
        # Behind the reverse proxy every request comes from the proxy: the citizen's (here the
        # staff member's) address is the one the proxy adds, as for the web chat's limits.
        return address_hash(self._address_key, client_address(request, self._trusted_proxy))

    def _pseudonym(self, account: StaffAccount) -> str:
        return account_pseudonym(self._pseudonym_key, account.id)
