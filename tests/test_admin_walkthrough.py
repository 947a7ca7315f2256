"""A municipality's first consultation through the dashboard, as a person who has never seen a
consultation file: the empty overview and list say where the first one comes from, the import
form starts from the annotated example (or downloads it), a consultation's page leads on to
planning a post about it, and the pages fit a phone's width."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.app import BorgerDialog
from bot.config import Settings
from bot.consultations.definition import parse_definition
from bot.consultations.demo import demo_source
from handlers.moderation.trail import TRAIL_COLUMNS
from storage.models import Consultation
from tests.axe import assert_accessible
from tests.citizens import example_with_round, import_consultation
from tests.clock import Clock
from tests.conftest import model_rows
from tests.dashboard import BROWSER_DATABASE, csrf_of, logged_in, post_form
from tests.results import SLUG as RESULTS_SLUG
from tests.results import results_source
from tests.test_admin_browser import browser_login

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)
LIST = "/admin/consultations"
EXAMPLE = "/admin/consultations/example.yaml"
PHONE = {"width": 390, "height": 800}


@pytest.fixture
async def clocked_app(make_settings: Callable[..., Settings]) -> AsyncIterator[BorgerDialog]:
    application = BorgerDialog(make_settings(), clock=Clock(NOW))
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


async def page_text(session: aiohttp.ClientSession, path: str) -> str:
    async with session.get(path) as page:
        assert page.status == 200, (path, page.status)
        return await page.text()


def textarea_of(page: str) -> str:
    found = re.search(r'<textarea[^>]*name="source"[^>]*>\n(.*?)</textarea>', page, re.S)
    assert found
    return html.unescape(found.group(1))


async def test_a_new_installation_says_where_the_first_consultation_comes_from(
    clocked_app: BorgerDialog,
) -> None:
    async with logged_in(clocked_app, "staff") as staff:
        overview = await page_text(staff, "/admin")
        listing = await page_text(staff, LIST)
    assert "Der er ingen høringer endnu. Opret den første under Høringer." in overview
    assert "høringer er åbne" not in overview
    assert "Der er ingen høringer endnu." in listing
    assert 'href="#import-heading"' in listing
    assert f'href="{LIST}?start=example#source"' in listing
    assert f'href="{EXAMPLE}"' in listing

    await import_consultation(
        clocked_app, example_with_round(NOW, NOW + timedelta(days=9), "hundeskov"), now=NOW
    )
    async with logged_in(clocked_app, "staff") as staff:
        overview = await page_text(staff, "/admin")
        listing = await page_text(staff, LIST)
    # Once there is one, the figures take the hint's place.
    assert "ingen høringer endnu" not in overview
    assert "1 høring er åben." in overview
    assert "ingen høringer endnu" not in listing
    # The way to start from the example stays: a second consultation is written the same way.
    assert f'href="{LIST}?start=example#source"' in listing


async def test_staff_start_from_the_example_change_it_and_import_it(
    clocked_app: BorgerDialog,
) -> None:
    async with logged_in(clocked_app, "staff") as staff:
        empty = await page_text(staff, LIST)
        started = await page_text(staff, f"{LIST}?start=example")
        async with staff.get(EXAMPLE) as download:
            assert download.status == 200
            assert download.content_type == "application/yaml"
            assert download.charset == "utf-8"
            assert download.headers["Content-Disposition"] == (
                'attachment; filename="eksempel-friluftsliv.yaml"'
            )
            downloaded = await download.text()
        assert textarea_of(empty) == ""
        example = textarea_of(started)
        assert example == demo_source() == downloaded
        # What a first-timer does: change the slug and the title, keep the rest, import.
        own = example.replace("slug: friluftsliv", "slug: cykelstier").replace(
            "da: Ny friluftspolitik", "da: Nye cykelstier i midtbyen"
        )
        response = await post_form(staff, LIST, LIST, {"source": own})
        page = await response.text()
    assert response.status == 200, page
    assert "Høringen »Nye cykelstier i midtbyen« (cykelstier) er oprettet" in page
    # The pasted text stays, to correct at once; the consultation keeps it for later.
    assert textarea_of(page) == own
    assert "finder du den på høringens side" in page
    (consultation,) = [row[0] for row in await model_rows(clocked_app, Consultation)]
    assert consultation.slug == "cykelstier"
    # The example is a file the importer takes as it is.
    assert parse_definition(downloaded, clocked_app.settings.zone).slug == "friluftsliv"


async def test_the_example_is_for_those_who_may_import(clocked_app: BorgerDialog) -> None:
    async with (
        logged_in(clocked_app, "moderator") as moderator,
        moderator.get(EXAMPLE) as refused,
    ):
        assert refused.status == 403
    async with (
        aiohttp.ClientSession(base_url=clocked_app.settings.public_base_url) as anonymous,
        anonymous.get(EXAMPLE, allow_redirects=False) as away,
    ):
        assert away.status == 303
        assert away.headers["Location"].partition("?next=")[0] == "/admin/login"


async def test_a_consultations_page_leads_on_to_planning_a_post_about_it(
    clocked_app: BorgerDialog,
) -> None:
    await import_consultation(
        clocked_app, example_with_round(NOW, NOW + timedelta(days=9), "hundeskov"), now=NOW
    )
    async with logged_in(clocked_app, "staff") as staff:
        page = await page_text(staff, f"{LIST}/hundeskov")
        link = re.search(r'<a class="button secondary" href="([^"]+)">Planlæg et opslag', page)
        assert link
        assert link.group(1) == "/admin/plan/new?consultation=hundeskov"
        form = await page_text(staff, link.group(1))
    assert re.search(r'<option value="hundeskov" selected', form)


async def test_the_plan_form_explains_its_danish_words_and_they_work(
    clocked_app: BorgerDialog,
) -> None:
    await import_consultation(
        clocked_app, example_with_round(NOW, NOW + timedelta(days=9), "hundeskov"), now=NOW
    )
    async with logged_in(clocked_app, "staff") as staff:
        form = html.unescape(await page_text(staff, "/admin/plan/new"))
        # The Danish words the sheet's rules read, each with what it means ...
        for words in (
            "»runde 1 lukker - 2 dage«",
            "»dagligt 3«",
            "»deltagere« (dem, der har sagt ja i denne høring)",
        ):
            assert words in form
        # ... and planned as the hints write them.
        response = await post_form(
            staff,
            "/admin/plan/new",
            "/admin/plan/new",
            {
                "consultation": "hundeskov",
                "when": "runde 1 lukker - 2 dage",
                "repeat": "dagligt 3",
                "audience": "deltagere",
                "text_da": "Husk at svare: høringen lukker snart.",
            },
        )
        assert response.status == 303, await response.text()
        post = await page_text(staff, response.headers["Location"])
    assert "Opslaget er planlagt." in post


@BROWSER_DATABASE
async def test_the_pages_of_a_first_consultation_fit_a_phone(
    browser: Any, clocked_app: BorgerDialog
) -> None:
    """At 390 px nothing is wider than the screen: the header with a long address and the
    logout button, the import form with the example in it, the coverage table."""
    await import_consultation(
        clocked_app, example_with_round(NOW, NOW + timedelta(days=9), "hundeskov"), now=NOW
    )
    page = await browser_login(browser, clocked_app, "staff")
    await page.set_viewport_size(PHONE)
    for path in ("/admin", f"{LIST}?start=example", f"{LIST}/hundeskov", "/admin/plan/new"):
        await page.goto(f"{clocked_app.settings.public_base_url}{path}")
        widest = await page.evaluate("document.documentElement.scrollWidth")
        wide = await page.evaluate(
            "() => Array.from(document.querySelectorAll('body *'))"
            ".filter(e => e.getBoundingClientRect().right > 390)"
            ".map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)"
        )
        assert widest <= PHONE["width"], (path, widest, wide)
        await assert_accessible(page)
    await page.goto(f"{clocked_app.settings.public_base_url}{LIST}")
    await page.get_by_role("link", name="Start fra eksemplet").click()
    await page.wait_for_url(f"**{LIST}?start=example#source")
    typed = await page.get_by_label("Eller indsæt filens tekst her").input_value()
    assert typed.startswith("# An annotated example consultation")
    await page.context.close()


async def test_a_recorded_decision_is_confirmed_where_the_page_comes_back_to(
    app: BorgerDialog,
) -> None:
    """The page returns scrolled to the decision form (#decisions): the confirmation is there,
    not at the top, out of sight."""
    await import_consultation(app, results_source())
    page_path = f"/admin/consultations/{RESULTS_SLUG}/results"
    async with logged_in(app, "staff") as staff:
        response = await post_form(
            staff,
            page_path,
            f"{page_path}/decision",
            {"number": "1", "decision": "accepted", "into": "", "reason": "Vi gør det."},
        )
        assert response.status == 303
        location = response.headers["Location"]
        assert location.endswith("#decisions")
        page = await page_text(staff, location.partition("#")[0])
    decisions = page[page.index('id="decisions"') :]
    assert '<p class="notice" role="status">Beslutningen om udsagn 1 er registreret.' in decisions
    assert page.count('class="notice"') == 1


# The words of table cells that do not fit their cell's width whole.
WORDS_CUT_IN_CELLS = """() => {
    const measure = document.createElement("canvas").getContext("2d");
    const cut = [];
    for (const cell of document.querySelectorAll("main td")) {
        if (cell.children.length) { continue; }  // plain text cells
        const style = getComputedStyle(cell);
        measure.font = style.font;
        const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
        const room = cell.clientWidth - padding;
        for (const word of cell.textContent.split(/\\s+/).filter(Boolean)) {
            if (measure.measureText(word).width > room + 0.5) { cut.push(word); }
        }
    }
    return cut;
}"""


@BROWSER_DATABASE
async def test_an_admin_reads_accounts_and_the_audit_log_in_danish_on_a_phone(
    browser: Any, clocked_app: BorgerDialog
) -> None:
    """The navigation puts a consultation's work first and the admins' pages last; the last
    login reads as the other pages' times do; the audit log's headings are Danish (the CSV
    keeps the command line's); neither wide table widens the page on a phone."""
    page = await browser_login(browser, clocked_app, "admin")
    navigation = page.get_by_role("navigation")
    assert await navigation.get_by_role("link").all_inner_texts() == [
        "Oversigt",
        "Høringer",
        "Moderation",
        "Indholdsplan",
        "Konti",
        "Revisionslog",
    ]
    await page.set_viewport_size(PHONE)
    base = clocked_app.settings.public_base_url
    await page.goto(f"{base}/admin/accounts")
    row = page.get_by_role("row", name=re.compile("ada@kommune.dk"))
    assert "1. december 2026 kl. 11:00" in await row.inner_text()
    await page.goto(f"{base}/admin/audit")
    headings = await page.get_by_role("columnheader").all_inner_texts()
    assert headings[:5] == ["Tidspunkt", "Nr.", "Høring", "Hændelse", "Udført af"]
    for path in ("/admin/accounts", "/admin/audit"):
        await page.goto(f"{base}{path}")
        widest = await page.evaluate("document.documentElement.scrollWidth")
        assert widest <= PHONE["width"], (path, widest)
        # Words stay whole in the cells ("administrator", not "admi nistr ator").
        assert await page.evaluate(WORDS_CUT_IN_CELLS) == [], path
        await assert_accessible(page)
    download = await page.context.request.get(f"{base}/admin/audit.csv")
    header = (await download.text()).lstrip("\ufeff").splitlines()[0]
    assert header.replace(";", ",").split(",") == list(TRAIL_COLUMNS)
    await page.context.close()


async def test_an_uploaded_file_is_not_copied_into_the_form(clocked_app: BorgerDialog) -> None:
    """Whoever uploaded a file has it; only pasted text is handed back to be saved."""
    source = example_with_round(NOW, NOW + timedelta(days=9), "hundeskov")
    async with logged_in(clocked_app, "staff") as staff:
        form = aiohttp.FormData()
        form.add_field("csrf", csrf_of(await page_text(staff, LIST)))
        form.add_field("file", source.encode(), filename="høring.yaml")
        async with staff.post(LIST, data=form) as done:
            assert done.status == 200
            page = await done.text()
    assert "(hundeskov) er oprettet" in page
    assert textarea_of(page) == ""
    assert "Gem den i en fil" not in page
