"""Staff accounts and the dashboard's login: the command line, the login page's limits, CSRF,
sessions that expire on the application's clock, and nothing secret in the HTML or the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from click.testing import Result
from yarl import URL

from bot.admin.accounts import add_account, hash_password, normalise_email
from bot.app import BorgerDialog
from bot.config import Settings
from storage.models import ModerationLogEntry, StaffAccount, StaffSession
from tests.cli import Cli, no_traceback
from tests.clock import Clock
from tests.conftest import model_rows
from tests.dashboard import csrf_of, logged_in, new_session
from tests.dashboard import login as dashboard_login

PASSWORD = "korrekt hest batteri"
EMAIL = "anne@kommune.dk"


def refused(result: Result) -> str:
    """Exit 2, nothing on stdout, one line on stderr; return it."""
    no_traceback(result)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    return line


def ok(result: Result) -> str:
    no_traceback(result)
    assert result.exit_code == 0, (result.exit_code, result.output)
    return result.stdout


def test_staff_commands(cli: Cli) -> None:
    assert ok(cli("migrate"))
    assert "Added anne@kommune.dk as admin" in ok(
        cli_in(cli, "staff", "add", "Anne@Kommune.dk", "--role", "admin", "--password-stdin")
    )
    assert "at least 12" in refused(
        cli_in(cli, "staff", "add", "b@kommune.dk", "--role", "staff", "--password-stdin", "kort")
    )
    assert "unknown role 'boss'" in refused(
        cli_in(cli, "staff", "add", "b@kommune.dk", "--role", "boss", "--password-stdin")
    )
    assert "already an account" in refused(
        cli_in(cli, "staff", "add", EMAIL, "--role", "staff", "--password-stdin")
    )
    assert "not an e-mail" in refused(
        cli_in(cli, "staff", "add", "anne", "--role", "staff", "--password-stdin")
    )
    # A right-to-left override would show the address reversed in the list and the log.
    assert "not an e-mail" in refused(
        cli_in(cli, "staff", "add", "ny\u202e@kommune.dk", "--role", "staff", "--password-stdin")
    )
    # Twelve spaces, or twelve zero-width spaces, are no password.
    for blank in (" " * 12, "\u200b" * 12, "kort" + "\u200b" * 10, "\u3164" * 12, "\ufe0f" * 12):
        assert "at least 12" in refused(
            cli_in(
                cli, "staff", "add", "c@kommune.dk", "--role", "staff", "--password-stdin", blank
            )
        )
    listing = ok(cli("staff", "list"))
    assert "anne@kommune.dk" in listing
    assert "admin" in listing
    assert "never" in listing
    assert "argon2" not in listing
    assert "no account for x@kommune.dk" in refused(cli("staff", "remove", "x@kommune.dk"))
    assert "New password set" in ok(
        cli_in(cli, "staff", "reset-password", EMAIL, "--password-stdin", "et helt nyt kodeord")
    )
    assert "no account" in refused(
        cli_in(cli, "staff", "reset-password", "x@kommune.dk", "--password-stdin")
    )
    assert "Removed anne@kommune.dk" in ok(cli("staff", "remove", EMAIL))
    assert "No accounts yet" in ok(cli("staff", "list"))
    # Each change made at the terminal is in the audit trail, by pseudonym, never the e-mail.
    trail = ok(cli("moderation", "log"))
    assert "anne@kommune.dk" not in trail
    for event in ("staff_added", "staff_password_reset", "staff_removed"):
        assert event in trail


def test_typed_password_is_asked_twice(cli: Cli) -> None:
    assert ok(cli("migrate"))
    from click.testing import CliRunner

    from bot.cli import main

    env = {"BORGERDIALOG_DATABASE_URL": cli.database_url}
    typed = CliRunner().invoke(
        main,
        ["staff", "add", EMAIL, "--role", "moderator"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        env=env,
    )
    assert typed.exit_code == 0, typed.output
    assert PASSWORD not in typed.output
    differing = CliRunner().invoke(
        main,
        ["staff", "add", "b@kommune.dk", "--role", "staff"],
        input=f"{PASSWORD}\nsomething else entirely\n{PASSWORD}\n{PASSWORD}\n",
        env=env,
    )
    assert differing.exit_code == 0, differing.output
    assert "moderator" in ok(cli("staff", "list"))


def test_an_account_made_before_the_address_rule_still_logs_in() -> None:
    """New addresses may hold no control or format character, but looking one up is as before:
    an account stored earlier with a pasted soft hyphen is still found."""
    assert normalise_email(" Anne\u00ad@Kommune.dk ") == "anne\u00ad@kommune.dk"


def cli_in(cli: Cli, *args: str) -> Result:
    """A command whose last argument is what standard input carries (else the good password)."""
    from click.testing import CliRunner

    from bot.cli import main

    *command, stdin = args if args[-1] != "--password-stdin" else (*args, PASSWORD)
    return CliRunner().invoke(
        main, command, input=stdin + "\n", env={"BORGERDIALOG_DATABASE_URL": cli.database_url}
    )


# -- the login page ---------------------------------------------------------------------------


@pytest.fixture
async def admin_app(make_settings: Callable[..., Settings]) -> AsyncIterator[BorgerDialog]:
    application = BorgerDialog(make_settings(), clock=Clock(datetime(2026, 12, 1, 9, tzinfo=UTC)))
    await application.start()
    assert application.uow is not None
    async with application.uow() as uow:
        await add_account(uow, EMAIL, "staff", await hash_password(PASSWORD), application.clock())
        await uow.commit()
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture
async def browser_session(admin_app: BorgerDialog) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=admin_app.settings.public_base_url,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"Accept-Language": "da-DK,da;q=0.9,en;q=0.5"},
    ) as session:
        yield session


async def login(
    session: aiohttp.ClientSession, email: str = EMAIL, password: str = PASSWORD
) -> tuple[aiohttp.ClientResponse, str]:
    return await dashboard_login(session, email, password)


async def test_login_sets_a_strict_cookie_and_shows_who(
    admin_app: BorgerDialog, browser_session: aiohttp.ClientSession, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    async with browser_session.get("/admin/login") as page:
        html = await page.text()
        assert page.status == 200
        assert "Log ind" in html
        assert "<script" not in html
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "form-action 'self'" in policy
        assert "frame-ancestors 'none'" in policy
    response, _ = await login(browser_session)
    assert response.status == 303
    assert response.headers["Location"] == "/admin"
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("bd_admin="))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/admin" in cookie
    assert "Secure" not in cookie  # served over http here; see the https test
    async with browser_session.get("/admin") as overview:
        html = await overview.text()
        assert overview.status == 200
        assert "anne@kommune.dk" in html
        assert "kommunikationsmedarbejder" in html
    async with browser_session.get("/admin", headers={"Accept-Language": "en"}) as overview:
        assert "communications staff" in await overview.text()
    (account,) = [row[0] for row in await model_rows(admin_app, StaffAccount)]
    assert account.last_login_at == admin_app.clock()
    assert account.password_hash not in html
    (entry,) = [row[0] for row in await model_rows(admin_app, ModerationLogEntry)]
    assert entry.event == "staff_login"
    assert re.fullmatch(r"staff [0-9a-f]{10}", entry.actor)
    assert EMAIL not in caplog.text
    assert PASSWORD not in caplog.text
    assert "argon2" not in caplog.text

    # Logging out needs the form's token; then the session is gone.
    async with browser_session.post(
        "/admin/logout", data={"csrf": "0" * 64}, allow_redirects=False
    ) as forged:
        assert forged.status == 403
    assert len(await model_rows(admin_app, StaffSession)) == 1
    async with browser_session.post(
        "/admin/logout", data={"csrf": csrf_of(html)}, allow_redirects=False
    ) as out:
        assert out.status == 303
        assert out.headers["Location"] == "/admin/login?why=logged-out"
    assert await model_rows(admin_app, StaffSession) == []
    events = [row[0].event for row in await model_rows(admin_app, ModerationLogEntry)]
    assert events == ["staff_login", "staff_logout"]
    async with browser_session.get("/admin", allow_redirects=False) as after:
        assert after.status == 303


async def test_session_cookie_is_secure_behind_https(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(public_url="https://borgerdialog.kommune.dk")
    application = BorgerDialog(settings)
    await application.start()
    try:
        assert application.uow is not None
        async with application.uow() as uow:
            await add_account(
                uow, EMAIL, "admin", await hash_password(PASSWORD), application.clock()
            )
            await uow.commit()
        local = f"http://{settings.http_host}:{settings.http_port}"
        async with aiohttp.ClientSession(base_url=local) as session:
            async with session.get("/admin/login") as page:
                pre = page.cookies["bd_admin_pre"]
                assert pre["secure"]
                token = csrf_of(await page.text())
            response = await session.post(
                "/admin/login",
                data={"email": EMAIL, "password": PASSWORD, "csrf": token},
                cookies={"bd_admin_pre": pre.value},
                allow_redirects=False,
            )
            assert response.status == 303
            assert response.cookies["bd_admin"]["secure"]
            assert response.cookies["bd_admin"]["httponly"]
    finally:
        await application.stop()


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    browser_session: aiohttp.ClientSession,
) -> None:
    wrong, wrong_html = await login(browser_session, password="ikke det rigtige kodeord")
    unknown, unknown_html = await login(browser_session, email="ukendt@kommune.dk")
    assert wrong.status == unknown.status == 401
    assert "E-mail eller adgangskode er forkert." in wrong_html

    # Each page gives back the e-mail typed (the password field has the focus), nothing else.
    assert 'value="ukendt@kommune.dk"' in unknown_html

    def without_token(html: str) -> str:
        html = re.sub(r'name="email" type="email"([^>]*) value="[^"]*"', "", html)
        return re.sub(r'name="csrf" value="[0-9a-f]+"', "", html)

    assert without_token(wrong_html) == without_token(unknown_html)


async def test_lockout_after_five_failures(
    admin_app: BorgerDialog, browser_session: aiohttp.ClientSession
) -> None:
    for _ in range(4):
        response, _ = await login(browser_session, password="ikke det rigtige kodeord")
        assert response.status == 401
    response, html = await login(browser_session, password="ikke det rigtige kodeord")
    assert response.status == 429
    assert "låst i 15 minutter" in html
    # Even the right password is refused while the lock lasts.
    response, html = await login(browser_session)
    assert response.status == 429
    assert "låst" in html
    events = [row[0].event for row in await model_rows(admin_app, ModerationLogEntry)]
    assert events == ["staff_lockout"]
    clock = admin_app.clock
    assert isinstance(clock, Clock)
    clock.now += timedelta(minutes=16)
    response, _ = await login(browser_session)
    assert response.status == 303


async def test_an_address_gets_twenty_attempts(
    admin_app: BorgerDialog, browser_session: aiohttp.ClientSession
) -> None:
    # Logins that succeed do not count: a town hall's staff share one address.
    for _ in range(21):
        response, _ = await login(browser_session)
        assert response.status == 303
    for number in range(20):
        response, _ = await login(browser_session, email=f"gæt{number}@kommune.dk")
        assert response.status == 401
    response, html = await login(browser_session)
    assert response.status == 429
    assert "For mange forsøg fra din adresse" in html
    clock = admin_app.clock
    assert isinstance(clock, Clock)
    clock.now += timedelta(minutes=16)
    response, _ = await login(browser_session)
    assert response.status == 303


async def test_login_without_the_right_csrf_token_is_refused(
    admin_app: BorgerDialog, browser_session: aiohttp.ClientSession
) -> None:
    async with browser_session.get("/admin/login") as page:
        token = csrf_of(await page.text())
    for data in (
        {"email": EMAIL, "password": PASSWORD},
        {"email": EMAIL, "password": PASSWORD, "csrf": "f" * 64},
    ):
        async with browser_session.post("/admin/login", data=data, allow_redirects=False) as r:
            assert r.status == 403
    # The right token without its pre-session cookie is refused as well.
    async with aiohttp.ClientSession(base_url=admin_app.settings.public_base_url) as other:
        data = {"email": EMAIL, "password": PASSWORD, "csrf": token}
        async with other.post("/admin/login", data=data, allow_redirects=False) as r:
            assert r.status == 403
    assert await model_rows(admin_app, StaffSession) == []
    assert await model_rows(admin_app, ModerationLogEntry) == []
    (account,) = [row[0] for row in await model_rows(admin_app, StaffAccount)]
    assert account.last_login_at is None


async def test_idle_and_old_sessions_end(
    admin_app: BorgerDialog, browser_session: aiohttp.ClientSession
) -> None:
    clock = admin_app.clock
    assert isinstance(clock, Clock)
    response, _ = await login(browser_session)
    assert response.status == 303
    clock.now += timedelta(minutes=29)
    async with browser_session.get("/admin", allow_redirects=False) as page:
        assert page.status == 200
    clock.now += timedelta(minutes=31)
    async with browser_session.get("/admin", allow_redirects=False) as page:
        assert page.status == 303
        assert page.headers["Location"] == "/admin/login?why=expired"
    # Active all along, a session still ends after twelve hours.
    response, _ = await login(browser_session)
    for _ in range(25):
        clock.now += timedelta(minutes=29)
        async with browser_session.get("/admin", allow_redirects=False) as page:
            last = page.status
    assert last == 303
    # A session nobody ends (a browser closed without logging out) is cleared at the next login.
    async with new_session(admin_app) as other:
        response, _ = await login(other)
        assert response.status == 303
    clock.now += timedelta(minutes=31)
    response, _ = await login(browser_session)
    assert response.status == 303
    assert len(await model_rows(admin_app, StaffSession)) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin"),
        ("GET", "/admin/moderation"),
        ("POST", "/admin/accounts"),
        ("GET", "/admin/"),
    ],
)
async def test_no_admin_page_without_login(
    browser_session: aiohttp.ClientSession, method: str, path: str
) -> None:
    async with browser_session.request(method, path, allow_redirects=False) as page:
        assert page.status == 303
        # The login page, told where the visitor was going (a dashboard page of its own).
        expected = {
            "/admin/moderation": "/admin/login?next=/admin/moderation",
            # A form sent without a session: what was sent is not kept, and the page says so.
            "/admin/accounts": "/admin/login?why=expired-post",
        }
        assert page.headers["Location"] == expected.get(path, "/admin/login")
        assert "anne" not in await page.text()


async def test_each_role_sees_its_own_sections(admin_app: BorgerDialog) -> None:
    """The navigation shows a role the parts it may open, and a part it may not says so."""
    expected = {
        "moderator": ({"/admin/moderation"}, "/admin/consultations"),
        "staff": ({"/admin/consultations", "/admin/plan"}, "/admin/moderation"),
    }
    for role, (shown, refused_path) in expected.items():
        async with logged_in(admin_app, role) as session:
            async with session.get("/admin") as overview:
                html = await overview.text()
            links = set(re.findall(r'<a href="(/admin/[a-z]+)"', html))
            assert admin_app.dashboard is not None
            registered = {s.path for s in admin_app.dashboard.sections}
            assert links & registered == shown & registered, (role, links)
            if refused_path in registered:
                async with session.get(refused_path) as page:
                    assert page.status == 403
                    assert "Ikke for din rolle" in await page.text()


async def test_an_unknown_admin_address_is_not_found_after_login(admin_app: BorgerDialog) -> None:
    async with logged_in(admin_app, "staff") as session, session.get("/admin/findes-ikke") as page:
        assert page.status == 404
        html = await page.text()
    assert "Siden findes ikke" in html
    assert 'lang="da"' in html


async def test_a_login_goes_back_where_the_visitor_was_and_says_why_it_was_asked(
    admin_app: BorgerDialog, browser_session: aiohttp.ClientSession
) -> None:
    """A link into the dashboard, or a session that ran out in the middle of a form: the login
    page says why it is shown, and logging in leads back to that page, never elsewhere."""
    base = admin_app.settings.public_base_url
    async with browser_session.get("/admin/moderation", allow_redirects=False) as away:
        assert away.headers["Location"] == "/admin/login?next=/admin/moderation"
    async with browser_session.get(away.headers["Location"]) as page:
        html = await page.text()
    assert '<input type="hidden" name="next" value="/admin/moderation">' in html
    data = {
        "email": EMAIL,
        "password": PASSWORD,
        "csrf": csrf_of(html),
        "next": "/admin/moderation",
    }
    async with browser_session.post("/admin/login", data=data, allow_redirects=False) as back:
        assert back.headers["Location"] == "/admin/moderation"
    # The session ends (logged out in another tab); the form on the plan page is sent.
    async with browser_session.get("/admin/accounts") as page:
        token = csrf_of(await page.text())
    await browser_session.post("/admin/logout", data={"csrf": token}, allow_redirects=False)
    async with browser_session.post(
        "/admin/accounts",
        data={"csrf": token, "email": "ny@kommune.dk"},
        headers={"Referer": f"{base}/admin/accounts?x=1"},
        allow_redirects=False,
    ) as lost:
        location = URL(lost.headers["Location"])
    assert location.path == "/admin/login"
    assert dict(location.query) == {"next": "/admin/accounts?x=1", "why": "expired-post"}
    async with browser_session.get(lost.headers["Location"]) as page:
        html = await page.text()
    assert "din session er udløbet, og det, du sendte, blev ikke gemt" in html
    assert 'name="next" value="/admin/accounts?x=1"' in html
    # Another site's address, or a way out of the dashboard, is never where a login leads.
    for elsewhere in ("https://evil.example/admin", "//evil.example/admin", "/chat", "/admin/../x"):
        data = {"email": EMAIL, "password": PASSWORD, "csrf": csrf_of(html), "next": elsewhere}
        async with browser_session.post("/admin/login", data=data, allow_redirects=False) as r:
            assert r.headers["Location"] == "/admin", elsewhere
        async with browser_session.get("/admin/login") as page:
            html = await page.text()
