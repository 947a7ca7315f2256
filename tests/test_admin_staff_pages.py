"""Accounts and the audit trail on the web: an admin manages accounts with the CLI's rules,
everyone changes their own password, and the trail shows every staff action by pseudonym."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable

import pytest

from bot.app import BorgerDialog
from bot.cli.common import audit_here
from bot.config import Settings
from tests.clock import Clock
from tests.conftest import NestedUnitsOfWork
from tests.dashboard import (
    PASSWORD,
    ROLE_EMAILS,
    csrf_of,
    logged_in,
    login,
    new_session,
    post_form,
)

NEW_EMAIL = "ny@kommune.dk"


@pytest.fixture
async def dashboard_app(make_settings: Callable[..., Settings]) -> AsyncIterator[BorgerDialog]:
    from datetime import UTC, datetime

    application = BorgerDialog(make_settings(), clock=Clock(datetime(2026, 12, 1, 9, tzinfo=UTC)))
    await application.start()
    # A refused change shows the accounts page: never from inside the refused unit of work.
    watch = NestedUnitsOfWork(application.engine)
    try:
        yield application
    finally:
        await application.stop()
    assert not watch.nested, watch.nested


def account_id(html: str, email: str) -> str:
    """The id in the forms of an account's row on the list."""
    row = html[html.index(email) :]
    found = re.search(r'action="/admin/accounts/(\d+)/role"', row)
    assert found, html
    return found.group(1)


async def test_an_admin_manages_accounts_with_the_clis_rules(dashboard_app: BorgerDialog) -> None:
    async with logged_in(dashboard_app, "admin") as admin:
        # A weak password: the reason in Danish, the typed e-mail kept, nothing created.
        weak = await post_form(
            admin,
            "/admin/accounts",
            "/admin/accounts",
            {"email": NEW_EMAIL, "role": "moderator", "password": "kort"},
        )
        html = await weak.text()
        assert weak.status == 400
        assert "Adgangskoden skal have mindst 12 tegn." in html
        assert f'value="{NEW_EMAIL}"' in html
        assert re.search(r'<option value="moderator" selected>', html)
        added = await post_form(
            admin,
            "/admin/accounts",
            "/admin/accounts",
            {"email": NEW_EMAIL, "role": "moderator", "password": PASSWORD},
        )
        assert added.status == 303
        async with admin.get(added.headers["Location"]) as listing:
            html = await listing.text()
        assert "Kontoen er oprettet." in html
        assert NEW_EMAIL in html
        taken = await post_form(
            admin,
            "/admin/accounts",
            "/admin/accounts",
            {"email": NEW_EMAIL.upper(), "role": "staff", "password": PASSWORD},
        )
        assert "Der findes allerede en konto" in await taken.text()

        # The new moderator logs in; a new role ends their session at once.
        async with new_session(dashboard_app) as moderator:
            response, _ = await login(moderator, NEW_EMAIL)
            assert response.status == 303
            new_id = account_id(html, NEW_EMAIL)
            changed = await post_form(
                admin, "/admin/accounts", f"/admin/accounts/{new_id}/role", {"role": "staff"}
            )
            assert changed.status == 303
            async with moderator.get("/admin", allow_redirects=False) as after:
                assert after.status == 303
                assert after.headers["Location"] == "/admin/login?why=expired"
            # A password set by the admin works; the old one does not.
            reset = await post_form(
                admin,
                "/admin/accounts",
                f"/admin/accounts/{new_id}/password",
                {"password": "et andet langt kodeord"},
            )
            assert reset.status == 303
            response, _ = await login(moderator, NEW_EMAIL)
            assert response.status == 401
            response, _ = await login(moderator, NEW_EMAIL, "et andet langt kodeord")
            assert response.status == 303

        # The only admin can be neither demoted nor removed.
        async with admin.get("/admin/accounts") as listing:
            html = await listing.text()
        own_id = account_id(html, ROLE_EMAILS["admin"])
        assert f'action="/admin/accounts/{own_id}/remove"' not in html  # no button for oneself
        demoted = await post_form(
            admin, "/admin/accounts", f"/admin/accounts/{own_id}/role", {"role": "staff"}
        )
        assert demoted.status == 400
        assert "den eneste administrator" in await demoted.text()
        remove = f"/admin/accounts/{new_id}/remove"
        kept = await post_form(admin, "/admin/accounts", remove, {})
        assert kept.status == 400
        assert "er ikke fjernet: sæt kryds" in await kept.text()
        removed = await post_form(admin, "/admin/accounts", remove, {"confirm": "yes"})
        assert removed.status == 303
        async with admin.get(removed.headers["Location"]) as listing:
            html = await listing.text()
        assert NEW_EMAIL not in html
        assert "Kontoen er fjernet." in html

        # Every change is in the trail, by pseudonym, with the address of an account that
        # still exists; the removed account's entries name nobody.
        async with admin.get("/admin/audit") as trail:
            html = await trail.text()
        for event in ("Konto oprettet", "Rolle ændret", "Adgangskode nulstillet", "Konto fjernet"):
            assert f"<td>{event}</td>" in html, event
        assert NEW_EMAIL not in html
        assert re.search(r"<td>administrator [0-9a-f]{10} \(ada@kommune\.dk\)</td>", html)


async def test_other_roles_cannot_manage_accounts_or_read_the_trail(
    dashboard_app: BorgerDialog,
) -> None:
    for role in ("staff", "moderator"):
        async with logged_in(dashboard_app, role) as session:
            for path in ("/admin/accounts", "/admin/audit", "/admin/audit.csv"):
                async with session.get(path) as page:
                    assert page.status == 403, (role, path)
            async with session.get("/admin/password") as page:
                token = csrf_of(await page.text())
            forged = await session.post(
                "/admin/accounts",
                data={
                    "email": "x@kommune.dk",
                    "role": "admin",
                    "password": PASSWORD,
                    "csrf": token,
                },
                allow_redirects=False,
            )
            assert forged.status == 403
    async with logged_in(dashboard_app, "admin") as admin:
        refused = await admin.post(
            "/admin/accounts",
            data={"email": "x@kommune.dk", "role": "admin", "password": PASSWORD, "csrf": "0" * 64},
            allow_redirects=False,
        )
        assert refused.status == 403
        async with admin.get("/admin/accounts") as listing:
            assert "x@kommune.dk" not in await listing.text()


async def test_everyone_changes_their_own_password(dashboard_app: BorgerDialog) -> None:
    async with (
        logged_in(dashboard_app, "moderator") as here,
        logged_in(dashboard_app, "moderator") as elsewhere,
    ):
        wrong = await post_form(
            here,
            "/admin/password",
            "/admin/password",
            {
                "current": "forkert kodeord her",
                "new": "nyt langt kodeord",
                "again": "nyt langt kodeord",
            },
        )
        assert wrong.status == 400
        assert "Den nuværende adgangskode er forkert." in await wrong.text()
        differ = await post_form(
            here,
            "/admin/password",
            "/admin/password",
            {"current": PASSWORD, "new": "nyt langt kodeord", "again": "nyt lang kodeord"},
        )
        assert "ikke ens" in await differ.text()
        same = await post_form(
            here,
            "/admin/password",
            "/admin/password",
            {"current": PASSWORD, "new": PASSWORD, "again": PASSWORD},
        )
        assert same.status == 400
        assert "Den nye adgangskode er den, du har nu." in await same.text()
        done = await post_form(
            here,
            "/admin/password",
            "/admin/password",
            {"current": PASSWORD, "new": "nyt langt kodeord", "again": "nyt langt kodeord"},
        )
        assert done.status == 303
        async with here.get(done.headers["Location"]) as page:
            assert "Din adgangskode er skiftet." in await page.text()
        async with elsewhere.get("/admin", allow_redirects=False) as other:
            assert other.status == 303  # the other session ended
    async with new_session(dashboard_app) as fresh:
        response, _ = await login(fresh, ROLE_EMAILS["moderator"], "nyt langt kodeord")
        assert response.status == 303


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_password_is_hashed_or_checked_while_the_database_is_locked(
    dashboard_app: BorgerDialog, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 takes a good part of a second: on SQLite, a writing unit of work open meanwhile
    would hold the one write lock, and every citizen's reply would wait for it."""
    import sqlite3

    from bot.admin import accounts

    path = database_url.removeprefix("sqlite+aiosqlite:///")
    locked: list[str] = []

    def writable() -> bool:
        probe = sqlite3.connect(path, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()

    class Watched:
        def hash(self, password: str) -> str:
            if not writable():
                locked.append("hash")
            return real.hash(password)

        def verify(self, stored: str, password: str) -> bool:
            if not writable():
                locked.append("verify")
            return real.verify(stored, password)

    real = accounts._hasher
    monkeypatch.setattr(accounts, "_hasher", Watched())
    async with logged_in(dashboard_app, "admin") as admin:
        added = await post_form(
            admin,
            "/admin/accounts",
            "/admin/accounts",
            {"email": NEW_EMAIL, "role": "staff", "password": PASSWORD},
        )
        assert added.status == 303
        async with admin.get("/admin/accounts") as page:
            new_id = account_id(await page.text(), NEW_EMAIL)
        reset = await post_form(
            admin,
            "/admin/accounts",
            f"/admin/accounts/{new_id}/password",
            {"password": "et andet langt kodeord"},
        )
        assert reset.status == 303
        changed = await post_form(
            admin,
            "/admin/password",
            "/admin/password",
            {"current": PASSWORD, "new": "nyt langt kodeord", "again": "nyt langt kodeord"},
        )
        assert changed.status == 303
    assert locked == []


async def test_the_trail_filters_and_downloads(dashboard_app: BorgerDialog) -> None:
    async with logged_in(dashboard_app, "staff"), logged_in(dashboard_app, "admin") as admin:
        async with admin.get("/admin/audit", params={"event": "staff_login"}) as page:
            html = await page.text()
        # The page names each kind of entry in the reader's language; the filter's value and
        # the CSV keep the command line's names.
        assert html.count("<td>Logget ind</td>") == 2
        assert '<option value="staff_login" selected>Logget ind</option>' in html
        assert "<td>Logget ud</td>" not in html
        assert "<td>staff_login</td>" not in html
        async with admin.get("/admin/audit", params={"actor": "staff "}) as page:
            html = await page.text()
        assert html.count("<td>Logget ind</td>") == 1
        # Admins see who is behind a pseudonym while the account exists, and find them by it.
        # The role in the reader's words, and who it is while the account exists.
        staff_actor = re.search(
            r"<td>(kommunikationsmedarbejder [0-9a-f]{10}) \(sofie@kommune\.dk\)</td>", html
        )
        assert staff_actor, html
        for by in ("Sofie@Kommune.dk", "Kommunikationsmedarbejder"):
            async with admin.get("/admin/audit", params={"actor": by}) as page:
                html = await page.text()
            assert html.count("<td>Logget ind</td>") == 1, by
            assert f"<td>{staff_actor.group(1)} (sofie@kommune.dk)</td>" in html
        async with admin.get("/admin/audit", params={"from": "1. december"}) as page:
            assert page.status == 400
            html = await page.text()
        assert "Skriv datoen som år-måned-dag" in html
        assert 'value="1. december"' in html
        async with admin.get(
            "/admin/audit", params={"from": "2026-12-02", "to": "2026-12-01"}
        ) as page:
            assert page.status == 400
            assert "Fra-datoen ligger efter til-datoen." in await page.text()
        async with admin.get("/admin/audit", params={"from": "2026-12-02"}) as page:
            assert "Ingen hændelser passer til filteret." in await page.text()
        async with admin.get("/admin/audit.csv", params={"to": "2026-12-01"}) as download:
            assert download.status == 200
            assert download.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in download.headers["Content-Disposition"]
            text = await download.text()
        # For Danish Excel: a byte-order mark and semicolons, as the results exports.
        assert text.startswith("\ufeffat;item;")
        rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
        assert [row["event"] for row in rows] == ["staff_login", "staff_login"]
        assert rows[0]["at"] == "2026-12-01 10:00"  # local time, Copenhagen
        assert "@" not in text
        async with admin.get("/admin/audit", params={"event": "audit_exported"}) as page:
            assert "<td>Revisionslog hentet</td>" in await page.text()
        # An entry made at the command line, whose actor begins as a staff account's does:
        # the role finds the accounts, "kommandolinjen" the command line.
        assert dashboard_app.uow is not None
        async with dashboard_app.uow() as uow:
            await audit_here(uow, "plan_imported")
            await uow.commit()
        async with admin.get("/admin/audit", params={"actor": "kommunikationsmedarbejder"}) as page:
            html = await page.text()
        assert html.count("<td>Logget ind</td>") == 1
        assert "<td>kommandolinjen</td>" not in html
        async with admin.get("/admin/audit", params={"actor": "Kommandolinjen"}) as page:
            html = await page.text()
        assert html.count("<td>kommandolinjen</td>") == 1
        assert "<td>Logget ind</td>" not in html


def test_the_audit_page_says_codes_in_the_readers_language() -> None:
    """The page names events, states, decisions, reasons and findings in Danish; a code with no
    name (a count, a statement's number) is shown as stored. The download keeps the codes."""
    from bot.admin.audit import readable_row
    from bot.dialogue.i18n import Catalogs

    row: dict[str, object] = {
        "at": "2026-12-01 10:00",
        "item": 4,
        "consultation": "friluftsliv",
        "event": "hidden",
        "actor": "moderator 0a1b2c3d4e",
        "author": "p-1234567890",
        "before": "held",
        "after": "hidden",
        "reason": "offensive",
        "flags": "name phone",
    }
    shown = readable_row(row, Catalogs("da").texts("da"))
    assert shown == {
        **row,
        "event": "Skjult",
        "before": "holdt tilbage",
        "after": "skjult",
        "reason": "Krænkende sprog",
        "flags": "navn, telefonnummer",
    }
    decided = {**row, "event": "statement_decided", "before": "", "after": "considering"}
    decided |= {"reason": "statement 6", "flags": ""}
    shown = readable_row(decided, Catalogs("da").texts("da"))
    assert (shown["event"], shown["after"], shown["reason"]) == (
        "Udsagn afgjort af medarbejder",
        "overvejes",
        "statement 6",
    )
