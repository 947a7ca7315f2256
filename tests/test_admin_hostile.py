"""The dashboard under /admin attacked: odd numbers and dates in addresses and forms, bodies that
are no form, labels that matplotlib would read as maths, markup in what staff and citizens write,
and a burst of logins. Each answer is a page in the reader's language (or a refusal), never a
500; the process stays responsive.

The real application (the demo consultation "friluftsliv"), real HTTP, the real database."""

from __future__ import annotations

import asyncio
import html
import time

import aiohttp

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


async def test_a_burst_of_logins_does_not_stall_the_server(demo_app: BorgerDialog) -> None:
    """argon2 takes a good part of a second per guess: in a thread, not on the event loop."""
    guesses = 4
    async with new_session(demo_app) as session, new_session(demo_app) as prober:
        async with session.get("/admin/login") as page:
            token = csrf_of(await page.text())

        async def guess() -> int:
            async with session.post(
                "/admin/login",
                data={
                    "email": "ingen@kommune.dk",
                    "password": "forkert adgangskode",
                    "csrf": token,
                },
            ) as response:
                return response.status

        started = time.perf_counter()
        burst = [asyncio.create_task(guess()) for _ in range(guesses)]
        await asyncio.sleep(0.05)  # the guesses are being checked
        asked = time.perf_counter()
        async with prober.get("/healthz") as response:
            assert response.status == 200
        health = time.perf_counter() - asked
        assert await asyncio.gather(*burst) == [401] * guesses
        elapsed = time.perf_counter() - started
    # On the event loop the health check waited for every guess in the burst; in threads it
    # is answered while they run.
    assert health < elapsed / 3, (health, elapsed)


async def test_reading_a_large_consultation_file_does_not_stall_the_server(
    demo_app: BorgerDialog,
) -> None:
    """PyYAML is pure Python: a file near the 1 MiB limit took tens of seconds on the loop."""
    # A valid YAML mapping of about 240 KB (an unknown field, so it is refused once read): a
    # couple of seconds of reading.
    source = "slug: stor\nextra:\n" + "".join(
        f'  - {{a: {n}, b: [1, 2, 3], c: "tekst"}}\n' for n in range(6000)
    )
    async with logged_in(demo_app, "staff") as session:
        async with session.get("/admin/consultations") as page:
            token = csrf_of(await page.text())
        form = aiohttp.FormData()
        form.add_field("csrf", token)
        form.add_field("file", source.encode(), filename="stor.yaml")
        # The server runs on this test's event loop: how late a short sleep wakes up is how
        # long the loop stood still (for every citizen's chat as for this ticker).
        gaps: list[float] = []

        async def tick() -> None:
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                gaps.append(time.perf_counter() - before)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        async with session.post("/admin/consultations", data=form) as response:
            assert response.status == 400  # read whole, and its mistake shown
            assert "extra" in await response.text()
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.05)  # the ticker's last gap is counted
        ticker.cancel()
    assert max(gaps) < elapsed / 3, (max(gaps), elapsed)
