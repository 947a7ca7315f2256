"""The dashboard under /admin attacked: odd numbers and dates in addresses and forms, bodies that
are no form, labels that matplotlib would read as maths, markup in what staff and citizens write,
and a burst of logins. Each answer is a page in the reader's language (or a refusal), never a
500; the process stays responsive.

The real application (the demo consultation "friluftsliv"), real HTTP, the real database."""

from __future__ import annotations

import asyncio
import html
import threading
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from bot.admin import accounts, consultations
from bot.app import BorgerDialog
from tests.citizens import import_consultation, open_now
from tests.dashboard import csrf_of, logged_in, new_session, post_form

RESULTS = "/admin/consultations/friluftsliv/results"
HUGE = "9" * 30  # larger than any id column, and than SQLite's 64-bit integers
ADMIN_POLICY_START = "default-src 'self'"


def assert_page(response: aiohttp.ClientResponse, text: str, statuses: set[int]) -> None:
    """An answer of the dashboard's own: one of ``statuses``, with the /admin headers."""
    assert response.status in statuses, (response.url, response.status, text[:200])
    assert "Internal Server Error" not in text
    assert response.headers["Content-Security-Policy"].startswith(ADMIN_POLICY_START)
    assert response.headers["Cache-Control"] == "no-store", response.url


async def test_odd_numbers_and_dates_in_addresses_get_a_page_not_a_crash(
    demo_app: BorgerDialog,
) -> None:
    asked = {
        # Row ids: "²" is a digit to str.isdigit() but not to int(); HUGE overflows the column.
        f"/admin/audit?before={HUGE}": {200},
        "/admin/audit?before=%C2%B2": {200},
        # The first and the last day Python has: their midnight in the zone is no datetime.
        "/admin/audit?from=0001-01-01": {400},
        "/admin/audit?to=9999-12-31": {400},
        f"{RESULTS}?decided=%C2%B2&told=1": {200},
        f"{RESULTS}?decided=1&told={'9' * 5000}": {200},  # past int()'s 4300 digits
        # A week whose neighbour (linked from the page) is before year 1 or after 9999.
        "/admin/plan?week=9999-W52": {400},
        "/admin/plan?week=0001-W01": {400},
    }
    async with logged_in(demo_app, "admin") as session:
        for path, statuses in asked.items():
            async with session.get(path, allow_redirects=False) as response:
                assert_page(response, await response.text(), statuses)
        # The download with a date that cannot be: back to the page, which says so.
        for day in ("from=0001-01-01", "to=9999-12-31"):
            async with session.get(f"/admin/audit.csv?{day}", allow_redirects=False) as response:
                assert response.status == 303, response.status
                assert response.headers["Location"].startswith("/admin/audit?")
        async with session.get("/admin/audit?to=9999-12-31") as response:
            page = html.unescape(await response.text())
        assert "9999-12-31" in page  # the form comes back as typed, with what is wrong


async def test_odd_numbers_in_forms_get_a_page_not_a_crash(demo_app: BorgerDialog) -> None:
    async with logged_in(demo_app, "admin") as session:
        # An account id larger than the column: an account that is not there (as a removed one).
        response = await post_form(
            session, "/admin/accounts", f"/admin/accounts/{HUGE}/role", {"role": "staff"}
        )
        assert response.status == 303, response.status
        assert response.headers["Location"] == "/admin/accounts?done=removed"
        # A decision on statement "²", on a huge number, or merged into one.
        for form in (
            {"number": "²", "decision": "accepted"},
            {"number": HUGE, "decision": "accepted"},
            {"number": "9999999999", "decision": "accepted"},  # over PostgreSQL's integer
            {"number": "1", "decision": "merged", "into": HUGE},
            {"number": "1", "decision": "merged", "into": "²"},
        ):
            response = await post_form(session, RESULTS, f"{RESULTS}/decision", form)
            assert_page(response, await response.text(), {400})


async def test_a_form_body_that_is_no_utf8_or_too_large_is_refused_in_danish(
    demo_app: BorgerDialog, caplog: pytest.LogCaptureFixture
) -> None:
    """No browser sends a form that is not UTF-8; a script may, to any form, logged in or not.
    It gets the dashboard's own refusal (400), as a login of more than the 64 KiB the
    application reads does (413), not a 500 or aiohttp's English, and no traceback is logged."""
    not_utf8 = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = "Formularen er udløbet eller ugyldig"
    async with new_session(demo_app) as visitor:
        async with visitor.get("/admin/login"):
            pass
        for path in ("/admin/login", "/admin/logout"):
            async with visitor.post(path, data=b"\xff\xfe\x00", headers=not_utf8) as response:
                text = await response.text()
                assert_page(response, text, {400})
                assert refused in text
        # A charset Python does not know.
        bogus = {"Content-Type": "application/x-www-form-urlencoded; charset=bogus"}
        async with visitor.post("/admin/login", data=b"email=a", headers=bogus) as response:
            assert_page(response, await response.text(), {400})
        big = {"email": "a@b.dk", "password": "x" * 70_000}
        async with visitor.post("/admin/login", data=big) as response:
            text = await response.text()
            assert_page(response, text, {413})
            assert refused in text
    async with logged_in(demo_app, "admin") as session:
        for path in ("/admin/accounts", "/admin/plan/new", "/admin/password"):
            async with session.post(path, data=b"csrf=\xff", headers=not_utf8) as response:
                text = await response.text()
                assert_page(response, text, {400, 403})
                assert refused in text
    assert [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()] == []


async def test_a_plan_upload_that_is_no_multipart_form_is_refused(demo_app: BorgerDialog) -> None:
    async with logged_in(demo_app, "staff") as session:
        async with session.get("/admin/plan/upload") as page:
            token = csrf_of(await page.text())
        # Url-encoded, as a hand-made request would send it: there is no sheet to read.
        async with session.post("/admin/plan/upload", data={"csrf": token}) as response:
            assert_page(response, await response.text(), {403})
        # Multipart in name only: no boundary, and a body that is no part.
        for content_type in ("multipart/form-data", "multipart/form-data; boundary=x"):
            async with session.post(
                "/admin/plan/upload",
                data=b"this is no multipart body",
                headers={"Content-Type": content_type},
            ) as response:
                assert_page(response, await response.text(), {403, 400})


# Markup and TeX where staff write a consultation: the pages escape it, and a chart draws it as
# written (matplotlib takes "$...$" for maths, and "$\foo$" for an error).
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
ODD_LABEL = r"<img src=x onerror=alert(3)> $\foo$ $5"
HOSTILE_CONSULTATION = (
    open_now("hostile")
    .replace("da: Ny friluftspolitik", f"da: '{XSS}'")
    .replace("da: Under 25", f"da: '{ODD_LABEL}'")
    .replace('da: "Hvor gammel er du?"', "da: 'Alder $x^$ --> <!-- <b>'")
)


async def test_markup_and_dollar_signs_in_a_consultation_are_shown_as_written(
    demo_app: BorgerDialog,
) -> None:
    await import_consultation(demo_app, HOSTILE_CONSULTATION)
    base = "/admin/consultations/hostile"
    async with logged_in(demo_app, "staff") as session:
        for path in ("/admin/consultations", base, f"{base}/results"):
            async with session.get(path) as response:
                page = await response.text()
                assert response.status == 200, path
            assert "<script>alert" not in page, path
            assert "<img src=x" not in page, path
            assert XSS in html.unescape(page), path  # shown, as text
        async with session.get(f"{base}/results/charts/questions/age_band.svg") as response:
            svg = await response.text()
            assert response.status == 200, svg[:200]
            assert response.headers["Content-Type"].startswith("image/svg+xml")
        # matplotlib draws text as shapes and keeps it in comments, escaped: no markup gets in,
        # and the label is there as written, dollar signs and all.
        assert "<img" not in svg
        assert "<script" not in svg
        assert html.escape(ODD_LABEL, quote=False) in svg


class HeldInThread:
    """Wraps a blocking function so that it waits, where it runs, until the test lets it go;
    it records the threads it ran on. The server runs on the test's event loop: had the function
    run there, nothing else could be answered while it is held."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self._function = function
        self.running = threading.Event()
        self.release = threading.Event()
        self.threads: list[int] = []

    def __call__(self, *args: Any) -> Any:
        self.threads.append(threading.get_ident())
        self.running.set()
        self.release.wait(10)
        return self._function(*args)

    async def wait_running(self) -> None:
        assert await asyncio.to_thread(self.running.wait, 10), "never called"


async def answered_meanwhile(app: BorgerDialog, held: HeldInThread) -> None:
    """While ``held`` runs, the server answers and writes (a citizen's web chat page, the
    health check with its write probe); then ``held`` may go on."""
    await held.wait_running()
    async with new_session(app) as prober:
        async with asyncio.timeout(5), prober.get("/healthz") as health:
            assert health.status == 200
            assert (await health.json())["writes"] == "ok"
        async with asyncio.timeout(5), prober.get("/chat?c=friluftsliv") as chat:
            assert chat.status == 200
    held.release.set()


async def test_a_burst_of_logins_does_not_stall_the_server(
    demo_app: BorgerDialog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 takes a good part of a second per guess: in a thread, with no transaction open
    (on SQLite an open one would hold the write lock for every citizen)."""
    held = HeldInThread(accounts._verify_now)
    monkeypatch.setattr(accounts, "_verify_now", held)
    async with new_session(demo_app) as session:
        async with session.get("/admin/login") as page:
            token = csrf_of(await page.text())
        data = {"email": "ingen@kommune.dk", "password": "forkert adgangskode", "csrf": token}
        guess = asyncio.create_task(session.post("/admin/login", data=data))
        await answered_meanwhile(demo_app, held)
        response = await guess
        assert response.status == 401
    assert threading.get_ident() not in held.threads


async def test_reading_a_large_consultation_file_does_not_stall_the_server(
    demo_app: BorgerDialog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyYAML is pure Python: a file near the 1 MiB limit took tens of seconds on the loop."""
    held = HeldInThread(consultations.definition_from_bytes)  # type: ignore[attr-defined]
    monkeypatch.setattr(consultations, "definition_from_bytes", held)
    source = "slug: stor\nextra:\n" + "".join(f"  - {{a: {n}}}\n" for n in range(100))
    async with logged_in(demo_app, "staff") as session:
        async with session.get("/admin/consultations") as page:
            token = csrf_of(await page.text())
        form = aiohttp.FormData()
        form.add_field("csrf", token)
        form.add_field("file", source.encode(), filename="stor.yaml")
        posted = asyncio.create_task(session.post("/admin/consultations", data=form))
        await answered_meanwhile(demo_app, held)
        response = await posted
        assert response.status == 400  # read whole, and its mistake shown
        assert "extra" in await response.text()
    assert threading.get_ident() not in held.threads
