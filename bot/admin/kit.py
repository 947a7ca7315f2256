"""What every dashboard page shares: who is logged in and what their role lets them see, the
forms' CSRF tokens, the audit trail, and a template rendered in the reader's language.

Each part of the dashboard (moderation, consultations, the content plan, ...) is a class that
takes the one ``DashboardKit`` and adds its routes and its section of the navigation; the
composition root (bot/app.py) builds them all.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from yarl import URL

from bot.admin.accounts import account_pseudonym, audit, current_session
from bot.config import Settings
from bot.dialogue.core import DialogueCore
from bot.dialogue.i18n import BoundTexts, Catalogs, supported_language
from handlers.events import ChatAddress
from storage.database import is_transient
from storage.models import StaffAccount, StaffRole
from storage.uow import UnitOfWork, UnitOfWorkFactory

logger = logging.getLogger(__name__)

PREFIX = "/admin"
LOGIN = f"{PREFIX}/login"
# Why the login page is shown: the session ran out (or ended in another tab), or a logout.
EXPIRED, EXPIRED_POST, LOGGED_OUT = "expired", "expired-post", "logged-out"
# A dashboard address to return to after logging in: a path of ours, never another site's.
_RETURN_PATH = re.compile(r"/admin(?:/[A-Za-z0-9._~%/-]*)?(?:\?[A-Za-z0-9._~%&=+-]*)?")


def return_path(value: object) -> str:
    """Where to go after logging in: the address asked for, if it is one of the dashboard's
    own (no "//", no scheme, no other host, no ".."), else the overview."""
    if (
        isinstance(value, str)
        and _RETURN_PATH.fullmatch(value)
        and "//" not in value
        and not {".", ".."} & set(value.partition("?")[0].split("/"))
    ):
        return value if value != LOGIN and not value.startswith(LOGIN + "?") else PREFIX
    return PREFIX


def _form_page(request: web.Request) -> str:
    """The page a posted form was on (its Referer, when it is this site's): a form's own
    address may take posts only."""
    referer = URL(request.headers.get("Referer", ""))
    if referer.is_absolute() and referer.host == request.url.host:
        return referer.path_qs
    return PREFIX


def login_address(request: web.Request, *, expired: bool) -> str:
    """The login page, told where the visitor was going (for a form sent, the page it was on:
    what was in it is not kept) and, when their session had ended, that it had."""
    wanted = request.path_qs if request.method == "GET" else _form_page(request)
    query: dict[str, str] = {}
    if return_path(wanted) not in (PREFIX, PREFIX + "/"):
        query["next"] = wanted
    if request.method != "GET":
        # Only a page shown while logged in has a form to send: the session ended meanwhile
        # (ran out, or logged out in another tab, which takes the cookie too).
        query["why"] = EXPIRED_POST
    elif expired:
        query["why"] = EXPIRED
    return f"{LOGIN}?{urlencode(query)}" if query else LOGIN


STATIC = f"{PREFIX}/static"
SESSION_COOKIE = "bd_admin"
PRE_SESSION_COOKIE = "bd_admin_pre"
TEMPLATES_KEY = web.AppKey("admin_templates", jinja2.Environment)
ROLE_KEYS = {
    StaffRole.ADMIN: "admin.role.admin",
    StaffRole.STAFF: "admin.role.staff",
    StaffRole.MODERATOR: "admin.role.moderator",
}
# Who may open which part. The rule: a moderator sees only moderation, staff see
# consultations, plans and results, admins manage accounts (and may do everything else too:
# in a small municipality the admin is often the one who also moderates).
AREAS: Mapping[str, frozenset[str]] = {
    "moderation": frozenset({StaffRole.ADMIN, StaffRole.MODERATOR}),
    "consultations": frozenset({StaffRole.ADMIN, StaffRole.STAFF}),
    "plan": frozenset({StaffRole.ADMIN, StaffRole.STAFF}),
    "accounts": frozenset({StaffRole.ADMIN}),
    "audit": frozenset({StaffRole.ADMIN}),
    # Deleting a consultation takes citizens' answers with it: admins only.
    "delete_consultations": frozenset({StaffRole.ADMIN}),
}


def page_language(accept_language: str | None, default: str) -> str:
    """The first supported language the browser asks for, else the default."""
    for part in (accept_language or "").split(","):
        language = supported_language(part.split(";")[0].strip() or None)
        if language is not None:
            return language
    return default


@dataclass(frozen=True)
class Section:
    """One entry of the navigation: an area's start page."""

    area: str
    path: str
    title_key: str


@dataclass(frozen=True)
class Visitor:
    """The logged-in person on this request: account, session token and language."""

    account: StaffAccount
    token: str
    texts: BoundTexts

    def may(self, area: str) -> bool:
        return self.account.role in AREAS[area]


class DashboardKit:
    """The shared rules of the dashboard's pages, on the application's storage and clock."""

    def __init__(
        self,
        settings: Settings,
        uow: UnitOfWorkFactory,
        catalogs: Catalogs,
        clock: Callable[[], datetime],
        secret: bytes,
        pseudonym_key: bytes,
    ) -> None:
        self.uow = uow
        self.catalogs = catalogs
        self.clock = clock
        self.settings = settings
        self.default_language = settings.default_language
        self.secure = settings.public_base_url.startswith("https://")
        # Separate keys from one secret: a CSRF token says nothing about an address hash.
        self._csrf_key = hmac.digest(secret, b"admin csrf tokens", "sha256")
        self.address_key = hmac.digest(secret, b"admin login addresses", "sha256")
        self.pseudonym_key = pseudonym_key
        self.sections: list[Section] = []

    def setup(self, app: web.Application) -> None:
        """Templates and static files; call before any part adds its routes."""
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.PackageLoader("bot.admin", "templates"),
            autoescape=jinja2.select_autoescape(default=True),
            undefined=jinja2.StrictUndefined,
            app_key=TEMPLATES_KEY,
        )
        app.router.add_static(STATIC, Path(str(resources.files("bot.admin") / "static")))

    def add_section(self, area: str, path: str, title_key: str) -> None:
        """Put an area's start page in the navigation (shown to the roles that may open it)."""
        self.sections.append(Section(area, path, title_key))

    # -- who is asking -------------------------------------------------------------------

    def texts(self, request: web.Request) -> BoundTexts:
        language = page_language(request.headers.get("Accept-Language"), self.default_language)
        return self.catalogs.texts(language)

    async def visitor(self, request: web.Request) -> Visitor:
        """The logged-in person, or a redirect to the login page."""
        token = request.cookies.get(SESSION_COOKIE)
        async with self.uow() as uow:
            found = await current_session(uow, token, self.clock())
            await uow.commit()  # the session's last_seen, or its end when it expired
        if found is None or token is None:
            raise web.HTTPSeeOther(login_address(request, expired=token is not None))
        return Visitor(found[1], token, self.texts(request))

    async def require(self, request: web.Request, area: str) -> Visitor:
        """The logged-in person if their role opens ``area``; else the login or a refusal."""
        visitor = await self.visitor(request)
        if not visitor.may(area):
            raise as_error(self.render(request, visitor, "forbidden.html", {}, status=403))
        return visitor

    async def form(self, request: web.Request, visitor: Visitor) -> Mapping[str, Any]:
        """A posted form whose CSRF token belongs to the visitor's session; else a refusal."""
        posted = await self.posted(request)
        if not self.token_matches("session", visitor.token, posted.get("csrf")):
            raise as_error(self.refusal(request))
        return posted

    async def posted(self, request: web.Request) -> Mapping[str, Any]:
        """The posted form, read before any check of it. A body the application will not read
        (over its 64 KiB) or cannot (not UTF-8, which no browser sends) is refused like a stale
        form, in the visitor's language, instead of aiohttp's English error or a 500."""
        try:
            return await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise as_error(self.refusal(request, status=413)) from None
        except (UnicodeDecodeError, ValueError, LookupError):
            # LookupError: a charset Python does not know ("charset=bogus").
            raise as_error(self.refusal(request, status=400)) from None

    # -- CSRF ------------------------------------------------------------------------------

    def token(self, purpose: str, cookie: str) -> str:
        return hmac.new(self._csrf_key, f"{purpose}:{cookie}".encode(), hashlib.sha256).hexdigest()

    def token_matches(self, purpose: str, cookie: str, given: object) -> bool:
        return isinstance(given, str) and hmac.compare_digest(self.token(purpose, cookie), given)

    # -- answers -----------------------------------------------------------------------------

    def render(
        self,
        request: web.Request,
        visitor: Visitor | None,
        template: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        texts: BoundTexts | None = None,
    ) -> web.Response:
        """A page from ``templates/``, with the navigation, the texts and the session's token."""
        t = visitor.texts if visitor is not None else (texts or self.texts(request))
        shared: dict[str, Any] = {
            "t": t,
            "language": t.language,
            "visitor": visitor,
            "prefix": PREFIX,
            "static": STATIC,
            "sections": [s for s in self.sections if visitor is not None and visitor.may(s.area)],
            "here": request.path,
            "csrf": self.token("session", visitor.token) if visitor is not None else "",
            "role_name": t(ROLE_KEYS[visitor.account.role]) if visitor is not None else "",
        }
        response = aiohttp_jinja2.render_template(
            template, request, {**shared, **context}, status=status, app_key=TEMPLATES_KEY
        )
        no_store(response)
        return response

    def not_found(self, request: web.Request, visitor: Visitor | None) -> web.HTTPException:
        """The dashboard's own 404 page (in the reader's language, with the navigation)."""
        return as_error(self.render(request, visitor, "not_found.html", {}, status=404))

    def refusal(self, request: web.Request, status: int = 403) -> web.Response:
        """A form whose token is missing or stale (or that cannot be read): a way back, never
        the action."""
        return self.render(request, None, "refused.html", {}, status=status)

    # -- the audit trail ---------------------------------------------------------------------

    def pseudonym(self, account: StaffAccount) -> str:
        return account_pseudonym(self.pseudonym_key, account.id)

    async def audit(
        self, uow: UnitOfWork, account: StaffAccount, event: str, **details: Any
    ) -> None:
        """Record a staff action by the account's pseudonym (the caller commits); ``details``
        as ``accounts.audit`` takes them."""
        await audit(uow, event, account, self.pseudonym_key, self.clock(), **details)


async def deliver_now(core: DialogueCore, chats: Iterable[ChatAddress]) -> None:
    """Send what a dashboard action queued (and committed) now, as the chats themselves would:
    an author's news, a redrawn card in the moderators' chat."""
    for address in chats:
        try:
            await core.delivery.deliver_chat(address.channel, address.chat_id)
        except Exception as error:
            if not is_transient(error):
                raise
            # Queued and committed: the redelivery job sends it once the database is back.
            logger.warning("delivery after a dashboard action waits: %s", type(error).__name__)


def no_store(response: web.StreamResponse) -> None:
    # Pages behind a login must not stay in a shared computer's cache.
    response.headers["Cache-Control"] = "no-store"


class FormTooLarge(web.HTTPClientError):
    """413 with a page of ours (aiohttp's own class is built from the sizes, with its text)."""

    status_code = 413


ERRORS: Mapping[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    413: FormTooLarge,
}


def as_error(page: web.Response) -> web.HTTPException:
    """A rendered error page as an exception, to leave a handler from a helper with it."""
    assert page.text is not None
    return ERRORS[page.status](
        text=page.text, content_type="text/html", headers={"Cache-Control": "no-store"}
    )
