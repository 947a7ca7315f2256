"""The dashboard's door under /admin: login, logout and the overview.

Server-rendered; every action works without JavaScript. Every form carries a CSRF token tied to
a cookie: before login the pre-session cookie, after it the session cookie; the cookie is
SameSite=Strict as well, but the token also holds where SameSite is not honoured.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.admin.accounts import (
    ABSOLUTE_TIMEOUT,
    address_hash,
    count_attempt,
    current_session,
    log_in,
    password_matches,
)
from bot.admin.kit import (
    EXPIRED,
    EXPIRED_POST,
    LOGGED_OUT,
    LOGIN,
    PRE_SESSION_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    DashboardKit,
    Visitor,
    return_path,
)
from bot.channels.webchat.limits import client_address
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


# The methods the dashboard's addresses take: pages and their forms.
PAGE_METHODS = frozenset({"GET", "HEAD", "POST"})


@dataclass(frozen=True)
class Panel:
    """An area's box on the overview: its title, link and a few lines of figures."""

    title: str
    path: str
    lines: tuple[str, ...]


# What an area puts on the overview for a visitor who may open it.
PanelSource = Callable[[UnitOfWork, Visitor], Awaitable[Panel]]


class AdminPages:
    """Login, logout and the overview; any other /admin address needs a session."""

    def __init__(self, kit: DashboardKit, trusted_proxy: bool) -> None:
        self._kit = kit
        self._trusted_proxy = trusted_proxy
        self._panels: list[tuple[str, PanelSource]] = []

    def add_panel(self, area: str, source: PanelSource) -> None:
        """Show an area's figures on the overview to the roles that may open the area."""
        self._panels.append((area, source))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(LOGIN, self.login_page)
        app.router.add_post(LOGIN, self.login)
        app.router.add_post(f"{PREFIX}/logout", self.logout)
        app.router.add_get(PREFIX, self.overview)

    def add_fallback(self, app: web.Application) -> None:
        """After every part's routes: an unknown /admin address asks for a login first."""
        app.router.add_route("*", PREFIX + "/{rest:.*}", self.elsewhere)

    # -- pages -----------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.Response:
        """The login form, with a fresh pre-session cookie when the browser has none; it says
        why it is shown when a session ran out or ended."""
        t = self._kit.texts(request)
        why = {
            EXPIRED: t("admin.login.expired"),
            EXPIRED_POST: t("admin.login.expired_post"),
            LOGGED_OUT: t("admin.login.logged_out"),
        }.get(request.query.get("why", ""))
        return self._login_form(
            request,
            message=None,
            status=200,
            notice=why,
            next_path=return_path(request.query.get("next")),
        )

    async def login(self, request: web.Request) -> web.Response:
        """Check the form's CSRF token, then the e-mail and password against the limits."""
        kit = self._kit
        pre = request.cookies.get(PRE_SESSION_COOKIE)
        form = await kit.posted(request)
        if not pre or not kit.token_matches("login", pre, form.get("csrf")):
            return kit.refusal(request)
        t = kit.texts(request)
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        # Three steps, the password checked between two short units (see accounts.py).
        async with kit.uow() as uow:
            attempt = await count_attempt(uow, email, self._address(request), kit.clock())
            await uow.commit()
        right = await password_matches(attempt, password)
        async with kit.uow() as uow:
            result = await log_in(uow, attempt, right, kit.clock())
            if result.account is not None and result.outcome in ("ok", "locked"):
                if result.outcome == "ok":
                    await kit.audit(uow, result.account, "staff_login")
                elif result.locked_now:
                    await kit.audit(uow, result.account, "staff_lockout")
            await uow.commit()
        if result.outcome == "ok":
            assert result.account is not None
            assert result.token is not None
            logger.info("dashboard login by %s", kit.pseudonym(result.account))
            response = web.HTTPSeeOther(return_path(form.get("next")))
            response.set_cookie(
                SESSION_COOKIE,
                result.token,
                path=PREFIX,
                max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
                httponly=True,
                samesite="Strict",
                secure=kit.secure,
            )
            response.del_cookie(PRE_SESSION_COOKIE, path=PREFIX)
            response.headers["Cache-Control"] = "no-store"
            raise response
        if result.locked_now:
            assert result.account is not None
            logger.warning("dashboard account %s locked", kit.pseudonym(result.account))
        messages = {
            "wrong": (t("admin.login.failed"), 401),
            "locked": (t("admin.login.locked"), 429),
            "throttled": (t("admin.login.throttled"), 429),
        }
        message, status = messages[result.outcome]
        return self._login_form(
            request,
            message=message,
            status=status,
            email=email,
            next_path=return_path(form.get("next")),
        )

    async def logout(self, request: web.Request) -> web.Response:
        """End the session (with the form's CSRF token) and go back to the login page."""
        kit = self._kit
        token = request.cookies.get(SESSION_COOKIE)
        form = await kit.posted(request)
        if not token or not kit.token_matches("session", token, form.get("csrf")):
            return kit.refusal(request)
        async with kit.uow() as uow:
            found = await current_session(uow, token, kit.clock())
            if found is not None:
                session, account = found
                await uow.staff.end_session(session)
                await kit.audit(uow, account, "staff_logout")
                logger.info("dashboard logout by %s", kit.pseudonym(account))
            await uow.commit()
        response = web.HTTPSeeOther(f"{LOGIN}?why={LOGGED_OUT}")
        response.del_cookie(SESSION_COOKIE, path=PREFIX)
        raise response

    async def overview(self, request: web.Request) -> web.Response:
        """Who is logged in, and each area's figures the visitor's role may see."""
        kit = self._kit
        visitor = await kit.visitor(request)
        async with kit.uow() as uow:
            panels = [
                await source(uow, visitor) for area, source in self._panels if visitor.may(area)
            ]
        return kit.render(request, visitor, "overview.html", {"panels": panels})

    async def elsewhere(self, request: web.Request) -> web.Response:
        """Any other /admin address: the login page without a session, else not found. A method
        no dashboard address takes (PUT, DELETE) is refused as such: a tool that sends one is
        not helped by the login page."""
        if request.method not in PAGE_METHODS:
            raise web.HTTPMethodNotAllowed(request.method, sorted(PAGE_METHODS))
        visitor = await self._kit.visitor(request)
        raise self._kit.not_found(request, visitor)

    # -- helpers ---------------------------------------------------------------------------

    def _login_form(
        self,
        request: web.Request,
        *,
        message: str | None,
        status: int,
        notice: str | None = None,
        email: str = "",
        next_path: str = PREFIX,
    ) -> web.Response:
        kit = self._kit
        pre = request.cookies.get(PRE_SESSION_COOKIE) or secrets.token_urlsafe(24)
        context = {
            "message": message,
            "notice": notice,
            # A wrong password keeps the e-mail typed; the password is never sent back.
            "email": email[:320],
            "next": next_path if next_path != PREFIX else "",
            "login_csrf": kit.token("login", pre),
        }
        response = kit.render(request, None, "login.html", context, status=status)
        if request.cookies.get(PRE_SESSION_COOKIE) != pre:
            response.set_cookie(
                PRE_SESSION_COOKIE,
                pre,
                path=PREFIX,
                httponly=True,
                samesite="Strict",
                secure=kit.secure,
            )
        return response

    def _address(self, request: web.Request) -> str:
        # Behind the reverse proxy every request comes from the proxy: the staff member's
        # address is the one the proxy adds, as for the web chat's limits.
        return address_hash(self._kit.address_key, client_address(request, self._trusted_proxy))
