"""Accounts on the web: admins add, change and remove them under /admin/accounts; everyone
changes their own password under /admin/password. The rules are bot/admin/accounts.py's, the same
as ``borgerdialog staff``'s."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from bot.admin.accounts import (
    AccountError,
    add_account,
    change_own_password,
    change_role,
    check_current_password,
    hash_password,
    remove_account,
    reset_password,
    token_hash,
)
from bot.admin.kit import PREFIX, ROLE_KEYS, DashboardKit, Visitor
from handlers.events import record_id
from handlers.moderation.cards import moment_text
from storage.models import StaffAccount, StaffRole
from storage.uow import UnitOfWork

ACCOUNTS = f"{PREFIX}/accounts"
PASSWORD = f"{PREFIX}/password"
# What a finished action says when the list is shown again (the address's ?done=).
DONE_KEYS = {
    "added": "admin.accounts.done.added",
    "role": "admin.accounts.done.role",
    "password": "admin.accounts.done.password",
    "removed": "admin.accounts.done.removed",
}


class StaffPages:
    """The accounts list and its forms (admins), and one's own password (everyone)."""

    def __init__(self, kit: DashboardKit) -> None:
        self._kit = kit

    def add_routes(self, app: web.Application) -> None:
        self._kit.add_section("accounts", ACCOUNTS, "admin.nav.accounts")
        app.router.add_get(ACCOUNTS, self.accounts)
        app.router.add_post(ACCOUNTS, self.add)
        app.router.add_post(ACCOUNTS + "/{id:\\d+}/role", self.role)
        app.router.add_post(ACCOUNTS + "/{id:\\d+}/password", self.reset)
        app.router.add_post(ACCOUNTS + "/{id:\\d+}/remove", self.remove)
        app.router.add_get(PASSWORD, self.password_page)
        app.router.add_post(PASSWORD, self.change_password)

    # -- admins: the accounts --------------------------------------------------------------

    async def accounts(self, request: web.Request) -> web.Response:
        visitor = await self._kit.require(request, "accounts")
        done = DONE_KEYS.get(request.query.get("done", ""))
        return await self._accounts_page(request, visitor, notice=done)

    async def add(self, request: web.Request) -> web.Response:
        kit = self._kit
        visitor = await kit.require(request, "accounts")
        form = await kit.form(request, visitor)
        email, role = str(form.get("email", "")), str(form.get("role", ""))
        # The password is hashed before the unit of work (bot.admin.accounts), and a refusal
        # is shown after it has ended: the page reads in a unit of its own, and one request
        # never holds two of the pool's connections at once.
        try:
            password_hash = await hash_password(str(form.get("password", "")))
            async with kit.uow() as uow:
                account = await add_account(uow, email, role, password_hash, kit.clock())
                author = kit.pseudonym(account)
                await kit.audit(uow, visitor.account, "staff_added", author=author)
                await uow.commit()
        except AccountError as refused:
            return await self._accounts_page(
                request, visitor, problem=refused, typed={"email": email, "role": role}
            )
        raise web.HTTPSeeOther(f"{ACCOUNTS}?done=added")

    async def role(self, request: web.Request) -> web.Response:
        kit = self._kit
        visitor = await kit.require(request, "accounts")
        form = await kit.form(request, visitor)
        refused: AccountError | None = None
        async with kit.uow() as uow:
            account = await self._account(uow, request)
            before = account.role
            try:
                await change_role(uow, account, str(form.get("role", "")))
            except AccountError as error:
                refused = error
            else:
                await kit.audit(
                    uow,
                    visitor.account,
                    "staff_role_changed",
                    author=kit.pseudonym(account),
                    before=before,
                    after=account.role,
                )
                await uow.commit()
        if refused is not None:
            return await self._accounts_page(request, visitor, problem=refused)
        raise web.HTTPSeeOther(f"{ACCOUNTS}?done=role")

    async def reset(self, request: web.Request) -> web.Response:
        kit = self._kit
        visitor = await kit.require(request, "accounts")
        form = await kit.form(request, visitor)
        try:
            password_hash = await hash_password(str(form.get("password", "")))  # as in add
            async with kit.uow() as uow:
                account = await self._account(uow, request)
                await reset_password(uow, account.email, password_hash)
                author = kit.pseudonym(account)
                await kit.audit(uow, visitor.account, "staff_password_reset", author=author)
                await uow.commit()
        except AccountError as refused:
            return await self._accounts_page(request, visitor, problem=refused)
        raise web.HTTPSeeOther(f"{ACCOUNTS}?done=password")

    async def remove(self, request: web.Request) -> web.Response:
        kit = self._kit
        visitor = await kit.require(request, "accounts")
        form = await kit.form(request, visitor)
        refused: AccountError | None = None
        async with kit.uow() as uow:
            account = await self._account(uow, request)
            pseudonym = kit.pseudonym(account)
            try:
                if form.get("confirm") != "yes":
                    # The browser asks for the box; this is for a form sent without it.
                    raise AccountError(
                        "not confirmed", "admin.accounts.remove_unconfirmed", email=account.email
                    )
                await remove_account(uow, account)
            except AccountError as error:
                refused = error
            else:
                await kit.audit(uow, visitor.account, "staff_removed", author=pseudonym)
                await uow.commit()
        if refused is not None:
            return await self._accounts_page(request, visitor, problem=refused)
        raise web.HTTPSeeOther(f"{ACCOUNTS}?done=removed")

    # -- everyone: their own password ------------------------------------------------------

    async def password_page(self, request: web.Request) -> web.Response:
        visitor = await self._kit.visitor(request)
        done = request.query.get("done") == "1"
        return self._password_form(request, visitor, problem=None, done=done)

    async def change_password(self, request: web.Request) -> web.Response:
        kit = self._kit
        visitor = await kit.visitor(request)
        form = await kit.form(request, visitor)
        new, again = str(form.get("new", "")), str(form.get("again", ""))
        # argon2 runs outside any transaction (bot.admin.accounts): check, hash, then store.
        checked_hash = visitor.account.password_hash
        try:
            if new != again:
                raise AccountError("the new passwords differ", "admin.password.differ")
            current = str(form.get("current", ""))
            await check_current_password(checked_hash, current)
            if new == current:
                # A change that changes nothing would be recorded as one (after a leak, say).
                raise AccountError("the new password is the current one", "admin.password.same")
            new_hash = await hash_password(new)
            async with kit.uow() as uow:
                account = await uow.staff.get(visitor.account.id)
                assert account is not None  # the session was just found with it
                await change_own_password(
                    uow, account, checked_hash, new_hash, token_hash(visitor.token)
                )
                await kit.audit(uow, account, "staff_password_changed")
                await uow.commit()
        except AccountError as error:
            return self._password_form(request, visitor, problem=error, done=False)
        raise web.HTTPSeeOther(f"{PASSWORD}?done=1")

    # -- helpers ---------------------------------------------------------------------------

    async def _account(self, uow: UnitOfWork, request: web.Request) -> StaffAccount:
        # The route takes any run of digits; one larger than the column holds crashed the
        # query (SQLite and PostgreSQL both refuse it), so it is an account that is not there.
        account_id = record_id(request.match_info["id"])
        account = await uow.staff.get(account_id) if account_id is not None else None
        if account is None:
            # Removed meanwhile (by another admin, or in another tab): say so on the list.
            raise web.HTTPSeeOther(f"{ACCOUNTS}?done=removed")
        return account

    async def _accounts_page(
        self,
        request: web.Request,
        visitor: Visitor,
        *,
        notice: str | None = None,
        problem: AccountError | None = None,
        typed: Mapping[str, str] | None = None,
    ) -> web.Response:
        kit = self._kit
        t = visitor.texts
        async with kit.uow.read() as uow:
            accounts = await uow.staff.all()
        now = kit.clock()
        zone = kit.settings.zone
        rows = [
            {
                "id": account.id,
                "email": account.email,
                "role": account.role,
                "last_login": (
                    moment_text(t, account.last_login_at, zone)
                    if account.last_login_at
                    else t("admin.accounts.never")
                ),
                "locked": account.locked_until is not None and account.locked_until > now,
                "is_me": account.id == visitor.account.id,
            }
            for account in accounts
        ]
        context = {
            "rows": rows,
            "roles": [(role, t(ROLE_KEYS[role])) for role in StaffRole.ALL],
            "notice": t(notice) if notice else None,
            "problem": t(problem.key, **problem.params) if problem else None,
            "typed": typed or {"email": "", "role": StaffRole.STAFF},
        }
        status = 400 if problem else 200
        return kit.render(request, visitor, "accounts/list.html", context, status=status)

    def _password_form(
        self, request: web.Request, visitor: Visitor, *, problem: AccountError | None, done: bool
    ) -> web.Response:
        t = visitor.texts
        context = {
            "problem": t(problem.key, **problem.params) if problem else None,
            "done": done,
        }
        status = 400 if problem else 200
        return self._kit.render(request, visitor, "accounts/password.html", context, status=status)
