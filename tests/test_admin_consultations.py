"""The dashboard's consultations (/admin/consultations): the list by state with participation,
importing a file as ``borgerdialog consultation import`` does (its messages, its audit), one
consultation's page with its QR codes and chart, and the same in a real browser under the CSP."""

from __future__ import annotations

import asyncio
import html
import io
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import segno

from bot.app import BorgerDialog
from bot.config import Settings
from bot.consultations.definition import DefinitionError, parse_definition
from bot.consultations.files import MAX_DEFINITION_BYTES
from bot.consultations.importer import import_definition
from bot.dialogue.i18n import Catalogs
from handlers.events import ChatAddress
from handlers.questionnaire import delete_due, span_of
from scheduler.jobs import remind_staff_to_delete
from storage.database import create_session_factory
from storage.models import Consultation, ModerationLogEntry, Participation
from storage.uow import UnitOfWorkFactory
from tests.axe import assert_accessible
from tests.citizens import (
    Citizen,
    answer_all,
    example_with_round,
    import_consultation,
    with_ideas_phase,
)
from tests.cli import in_process
from tests.clock import Clock
from tests.conftest import model_rows
from tests.dashboard import BROWSER_DATABASE, csrf_of, logged_in, post_form
from tests.fake_telegram import FakeBot, FakeTelegram
from tests.test_admin_browser import browser_login

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)
LIST = "/admin/consultations"


@pytest.fixture
async def clocked_app(
    fake_bot: FakeBot, fake_telegram: FakeTelegram, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[BorgerDialog, Clock]]:
    """The real application on the fake Telegram, on a clock the test moves."""
    clock = Clock(NOW)
    settings = make_settings(telegram_token=fake_bot.token, telegram_api_url=fake_telegram.api_url)
    application = BorgerDialog(settings, clock=clock)
    await application.start()
    try:
        yield application, clock
    finally:
        await application.stop()


def consultation_file(slug: str, opens: datetime, closes: datetime) -> str:
    return example_with_round(opens, closes, slug)


async def three_consultations(app: BorgerDialog) -> None:
    """One open (friluftsliv), one upcoming (skolevej) and one closed (budget)."""
    for slug, opens, closes in (
        ("friluftsliv", NOW - timedelta(days=3), NOW + timedelta(days=30)),
        ("skolevej", NOW + timedelta(days=10), NOW + timedelta(days=40)),
        ("budget", NOW - timedelta(days=60), NOW - timedelta(days=20)),
    ):
        await import_consultation(app, consultation_file(slug, opens, closes), now=NOW)


async def page_text(session: aiohttp.ClientSession, path: str) -> str:
    async with session.get(path) as page:
        assert page.status == 200, (path, page.status)
        return await page.text()


def section(page: str, heading_id: str) -> str:
    """The HTML of the <section> labelled by a heading's id."""
    found = re.search(rf'<section[^>]*aria-labelledby="{heading_id}".*?</section>', page, re.S)
    assert found, heading_id
    return found.group(0)


def row_of(page: str, slug: str) -> list[str]:
    """The cells of the list's row for a consultation, as text."""
    found = re.search(rf'<tr>\s*<th scope="row"><a href="{LIST}/{slug}">.*?</tr>', page, re.S)
    assert found, slug
    return [re.sub(r"<[^>]+>", " ", cell).strip() for cell in re.findall(
        r"<t[hd][^>]*>(.*?)</t[hd]>", found.group(0), re.S)]  # fmt: skip


def textarea_of(page: str) -> str:
    found = re.search(r'<textarea[^>]*name="source"[^>]*>\n(.*?)</textarea>', page, re.S)
    assert found
    return html.unescape(found.group(1))


def upload(token: str, content: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", content, filename="høring.yaml", content_type="application/yaml")
    return form


async def token_of(session: aiohttp.ClientSession) -> str:
    return csrf_of(await page_text(session, LIST))


# -- the list ------------------------------------------------------------------------------------


async def test_staff_see_consultations_by_state_with_todays_and_all_participation(
    clocked_app: tuple[BorgerDialog, Clock], fake_bot: FakeBot
) -> None:
    app, clock = clocked_app
    await three_consultations(app)
    # Two citizens take part through Telegram yesterday, one today; one only looks.
    clock.now = NOW - timedelta(days=1)
    await answer_all(Citizen(fake_bot, 7001))
    await Citizen(fake_bot, 7002).write("/start friluftsliv", new=2)
    await Citizen(fake_bot, 7002).tap("Ja, jeg giver samtykke")
    clock.now = NOW
    await answer_all(Citizen(fake_bot, 7003))
    await Citizen(fake_bot, 7004).write("/start friluftsliv", new=2)

    async with logged_in(app, "staff") as staff:
        page = await page_text(staff, LIST)
        overview = await page_text(staff, "/admin")
    open_, upcoming, closed = (section(page, f"group-{s}") for s in ("open", "upcoming", "closed"))
    assert "friluftsliv" in open_
    assert "(1)" in open_
    assert "skolevej" in upcoming
    assert "friluftsliv" not in upcoming
    assert "budget" in closed
    assert "skolevej" not in closed
    title, when, today, total = row_of(page, "friluftsliv")
    assert title.startswith("Ny friluftspolitik")
    assert when.startswith("Lukker 31. december 2026")
    assert (today, total) == ("1", "3")
    assert row_of(page, "skolevej")[1].startswith("Åbner 11. december 2026")
    assert row_of(page, "budget")[2:] == ["0", "0"]
    # The overview's panel: one open, one upcoming, one said yes today.
    assert f'href="{LIST}"' in overview
    for line in ("1 høring er åben.", "1 høring er på vej.", "1 har sagt ja til at deltage i dag."):
        assert line in overview
    # Pseudonyms only: no citizen's Telegram id on any page.
    assert "7001" not in page
    assert "7003" not in page


async def test_a_consultation_closed_longer_than_the_reminder_asks_to_be_deleted(
    clocked_app: tuple[BorgerDialog, Clock], fake_bot: FakeBot, tmp_path: Path
) -> None:
    """Storage limitation: what citizens gave a consultation is kept while its purpose needs
    it. Closed more than BORGERDIALOG_DELETE_REMINDER_DAYS (180) ago with people in it, it is
    named on the list, the overview, its own page and by `consultation list`, until deleted."""
    app, clock = clocked_app
    days = app.settings.delete_reminder_days
    assert days == 180
    for slug, closed_days_ago in (("budget", days + 20), ("skolevej", days - 20)):
        closes = NOW - timedelta(days=closed_days_ago)
        source = consultation_file(slug, closes - timedelta(days=30), closes)
        await import_consultation(app, source, now=NOW - timedelta(days=closed_days_ago + 40))
        clock.now = closes - timedelta(days=1)
        citizen = Citizen(fake_bot, 7100 + closed_days_ago)
        await citizen.write(f"/start {slug}", new=2)
        await citizen.tap("Ja, jeg giver samtykke")
    # Closed long ago, but nobody took part: nothing of citizens' to delete.
    empty = consultation_file("tom", NOW - timedelta(days=400), NOW - timedelta(days=300))
    await import_consultation(app, empty, now=NOW - timedelta(days=500))
    clock.now = NOW

    async with logged_in(app, "staff") as staff:
        page = await page_text(staff, LIST)
        overview = await page_text(staff, "/admin")
        budget_for_staff = await page_text(staff, f"{LIST}/budget")
    async with logged_in(app, "admin") as admin:
        page_for_admin = await page_text(admin, LIST)
        budget = await page_text(admin, f"{LIST}/budget")
        skolevej = await page_text(admin, f"{LIST}/skolevej")
    notice = re.search(r'<div class="reminder" id="delete-due">.*?</div>', page, re.S)
    assert notice, "no reminder on the list"
    reminder = notice.group(0)
    assert "1 høring har været lukket i mere end 180 dage og rummer stadig oplysninger om" in (
        reminder
    )
    # Staff cannot delete: their link opens the page, whose reminder they see too; an admin's
    # leads to the delete section.
    assert f'href="{LIST}/budget"' in reminder
    assert "skolevej" not in reminder
    assert f'href="{LIST}/tom' not in reminder
    assert f'href="{LIST}/budget#delete-heading"' in page_for_admin
    assert "#delete-heading" not in page
    assert row_of(page, "budget")[1].endswith("Slet, når formålet er opfyldt")
    assert "Slet, når formålet er opfyldt" not in row_of(page, "skolevej")[1]
    assert "Slet, når formålet er opfyldt" not in row_of(page, "tom")[1]
    assert "1 høring har været lukket i mere end 180 dage og bør slettes" in overview
    for shown in (budget, budget_for_staff):
        assert 'id="delete-due"' in shown
        assert "Høringen har været lukket i mere end 180 dage" in shown
    assert 'id="delete-heading"' not in budget_for_staff
    assert 'id="delete-due"' not in skolevej
    # The command line names it too.
    env = {"BORGERDIALOG_DATABASE_URL": app.settings.database_url}
    listing = await asyncio.to_thread(in_process, "consultation", "list", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert "Closed more than 180 days ago and still holding data about citizens: budget." in (
        " ".join(listing.stdout.split())
    )


async def test_the_staff_chat_is_asked_weekly_to_delete_what_closed_long_ago(
    fake_bot: FakeBot, fake_telegram: FakeTelegram, make_settings: Callable[..., Settings]
) -> None:
    """Staff who work in Telegram hear it too: once a week while a consultation is due, in the
    staff chat, each time in the audit trail (which is also how a restart knows it asked)."""
    staff_chat = -100777
    fake_bot.send_message(9301, "hej", chat_id=staff_chat, chat_type="supergroup")
    clock = Clock(NOW)
    settings = make_settings(
        telegram_token=fake_bot.token,
        telegram_api_url=fake_telegram.api_url,
        staff_chat_id=staff_chat,
    )
    app = BorgerDialog(settings, clock=clock)
    await app.start()
    try:
        closes = NOW - timedelta(days=200)
        source = consultation_file("budget", closes - timedelta(days=30), closes)
        await import_consultation(app, source, now=closes - timedelta(days=40))
        clock.now = closes - timedelta(days=1)
        citizen = Citizen(fake_bot, 7201)
        await citizen.write("/start budget", new=2)
        await citizen.tap("Ja, jeg giver samtykke")
        assert app.uow is not None
        address = ChatAddress("telegram", str(staff_chat))

        async def remind(at: datetime, chat: ChatAddress | None = address) -> bool:
            clock.now = at
            return await remind_staff_to_delete(
                app.uow, clock, app.core.delivery, chat, app.core.texts, 180
            )

        before = len(fake_bot.texts(staff_chat))
        assert await remind(NOW)
        (asked,) = fake_bot.texts(staff_chat)[before:]
        assert asked.startswith("🗂 1 høring har været lukket i mere end 180 dage")
        assert ": budget. Slet den, når formålet med den er opfyldt" in asked
        assert not await remind(NOW + timedelta(days=6)), "asked this week already"
        assert await remind(NOW + timedelta(days=7, minutes=1))
        assert not await remind(NOW + timedelta(days=30), chat=None), "no staff chat"
        assert len(fake_bot.texts(staff_chat)) == before + 2
        trail = [row[0] for row in await model_rows(app, ModerationLogEntry)]
        reminded = [(e.consultation, e.actor) for e in trail if e.event == "delete_reminded"]
        assert reminded == [("budget", "scheduler")] * 2
    finally:
        await app.stop()


def test_a_polis_summary_is_due_for_deletion_counting_from_its_import() -> None:
    """A consultation made from a Pol.is summary has neither rounds nor an ideas phase: it is
    "closed" from the start, and the reminder counts from its import."""
    imported = Consultation(slug="midtby", created_at=NOW - timedelta(days=200))
    span = span_of(imported, [], NOW)
    assert (span.status, span.phase) == ("closed", None)
    assert delete_due(imported, span, 40, NOW, 180)
    assert not delete_due(imported, span, 40, NOW + timedelta(days=-30), 180), "170 days"
    assert not delete_due(imported, span, 0, NOW, 180), "nobody's data in it"


async def test_a_consultation_whose_ideas_phase_runs_after_its_round_is_listed_as_open(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    """Citizens still write and vote in the ideas phase after the last round closed: the list
    and the consultation's page say it is open, until the ideas phase closes."""
    app, _ = clocked_app
    source = with_ideas_phase(
        consultation_file("idebank", NOW - timedelta(days=60), NOW - timedelta(days=20)),
        NOW - timedelta(days=30),
        NOW + timedelta(days=9),
    )
    await import_consultation(app, source, now=NOW)
    async with logged_in(app, "staff") as staff:
        page = await page_text(staff, LIST)
        own = await page_text(staff, f"{LIST}/idebank")
    assert "idebank" in section(page, "group-open")
    assert "idebank" not in section(page, "group-closed")
    assert row_of(page, "idebank")[1].startswith("Lukker 10. december 2026")
    assert "idebank · i gang" in own


async def test_a_moderator_may_not_open_consultations(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    app, _ = clocked_app
    await three_consultations(app)
    async with logged_in(app, "moderator") as moderator:
        for path in (
            LIST,
            f"{LIST}/friluftsliv",
            f"{LIST}/friluftsliv/qr/web.svg",
            f"{LIST}/friluftsliv/chart/participation.svg",
            f"{LIST}/friluftsliv/files/1",
            f"{LIST}?edit=friluftsliv",
        ):
            async with moderator.get(path) as page:
                assert page.status == 403, path
                assert "Ikke for din rolle" in await page.text()
        token = csrf_of(await page_text(moderator, "/admin"))
        source = consultation_file("ny", NOW, NOW + timedelta(days=5)).encode()
        async with moderator.post(LIST, data=upload(token, source)) as refused:
            assert refused.status == 403
        overview = await page_text(moderator, "/admin")
    assert "høring er åben" not in overview
    assert [row[0].slug for row in await model_rows(app, Consultation)] == [
        "friluftsliv",
        "skolevej",
        "budget",
    ]


# -- importing -----------------------------------------------------------------------------------


async def test_a_pasted_file_with_a_mistake_shows_the_commands_messages_and_keeps_the_text(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    app, _ = clocked_app
    good = consultation_file("hundeskov", NOW, NOW + timedelta(days=20))
    # Two mistakes: a round that closes before it opens, and a quota naming no option.
    wrong = good.replace("closes: ", "closes: 2020-01-01 10:00\n    # was: ", 1).replace(
        "option: under_25", "option: under_20"
    )
    with pytest.raises(DefinitionError) as parsed:
        parse_definition(wrong, app.settings.zone)
    command_line = [str(mistake) for mistake in parsed.value.errors]
    assert len(command_line) == 2
    assert "line 69: rounds[0].closes: must be after opens" in command_line
    # The dashboard says the same, in Danish for a Danish visitor.
    expected = [mistake.read(Catalogs("da").texts("da")) for mistake in parsed.value.errors]
    assert "linje 69: rounds[0].closes: skal ligge efter opens" in expected

    async with logged_in(app, "staff") as staff:
        response = await post_form(staff, LIST, LIST, {"source": wrong})
        page = await response.text()
    assert response.status == 400
    assert "Filen har 2 fejl, så intet er importeret." in page
    # The command line's lines, one each, in its order, each a link to its line in the text.
    mistakes = re.search(r'id="mistakes">(.*?)</div>', page, re.S)
    assert mistakes
    shown = re.findall(r'<li><a href="#source" data-line="(\d+)">(.*?)</a></li>', mistakes.group(1))
    assert [html.unescape(text) for _, text in shown] == expected
    assert [int(line) for line, _ in shown] == [m.line for m in parsed.value.errors]
    assert textarea_of(page) == wrong
    assert await model_rows(app, Consultation) == []


@pytest.mark.parametrize(
    ("source", "danish"),
    [
        ("slug: sti\n\ttitle: Stien\n", "der står et tabulatortegn; ryk ind med mellemrum"),
        ("slug: sti\ntitle\nx: 1\n", "en linje mangler et kolon efter sit navn (navn: værdi)"),
        ("slug: sti\ntitle: [Stien\n", "en [ eller { bliver ikke lukket"),
        ("slug: sti\ntitle: @stien\n", "en værdi begynder med tegnet @, som YAML ikke tillader"),
        ("slug: sti\ntitle: *stien\n", "tegnene * og & har en særlig betydning i YAML"),
        ("slug: sti\ntitle: * Stien\n", "tegnene * og & har en særlig betydning i YAML"),
        ("slug: sti\ntitle: & Stien\n", "tegnene * og & har en særlig betydning i YAML"),
    ],
)
def test_a_file_that_is_no_yaml_is_explained_in_danish(source: str, danish: str) -> None:
    """PyYAML's English parser words ("could not find expected ':'") became plain Danish, with
    what to do, inside the dashboard's Danish mistake."""
    with pytest.raises(DefinitionError) as parsed:
        parse_definition(source, ZoneInfo("Europe/Copenhagen"))
    (mistake,) = parsed.value.errors
    shown = mistake.read(Catalogs("da").texts("da"))
    assert shown.startswith("linje ")
    assert ": er ikke gyldig YAML: " + danish in shown


def test_an_unclosed_quote_is_found_on_its_own_line_not_where_yaml_stumbles() -> None:
    """A quote left open on line 11 reads on as one text; PyYAML stumbled on line 55 and said
    the lines were indented unevenly (found by an outside trial)."""
    from bot.consultations.demo import demo_source

    source = demo_source().replace("da: Ny friluftspolitik", 'da: "Ny friluftspolitik', 1)
    line = source.splitlines().index('  da: "Ny friluftspolitik') + 1
    with pytest.raises(DefinitionError) as parsed:
        parse_definition(source, ZoneInfo("Europe/Copenhagen"))
    (mistake,) = parsed.value.errors
    shown = mistake.read(Catalogs("da").texts("da"))
    assert shown.startswith(f"linje {line}: ")
    assert shown.endswith("er ikke gyldig YAML: et anførselstegn bliver ikke lukket")


async def test_an_uploaded_file_is_imported_audited_and_listed_and_a_second_one_updates_it(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    app, _ = clocked_app
    source = consultation_file("hundeskov", NOW - timedelta(hours=1), NOW + timedelta(days=20))
    async with logged_in(app, "staff") as staff:
        async with staff.post(LIST, data=upload(await token_of(staff), source.encode())) as done:
            assert done.status == 200
            page = await done.text()
        assert (
            "Høringen »Ny friluftspolitik« (hundeskov) er oprettet med 9 spørgsmål og 1 runde."
            in page
        )
        assert "hundeskov" in section(page, "group-open")
        assert "hundeskov" in section(await page_text(staff, LIST), "group-open")
        # The same file again, with a question fewer: updated, as the command line does.
        shorter = re.sub(r"\n  # postcode:.*?optional: true\n", "\n", source, flags=re.S)
        assert shorter != source
        async with staff.post(LIST, data=upload(await token_of(staff), shorter.encode())) as again:
            page = await again.text()
        assert "(hundeskov) er opdateret: 8 spørgsmål" in page
        assert "Fjernede spørgsmål uden svar: postcode" in page
    (consultation,) = [row[0] for row in await model_rows(app, Consultation)]
    assert consultation.slug == "hundeskov"
    audit = [row[0] for row in await model_rows(app, ModerationLogEntry)]
    imports = [entry for entry in audit if entry.event == "consultation_imported"]
    assert [(e.consultation, e.after) for e in imports] == [
        ("hundeskov", "created"),
        ("hundeskov", "updated"),
    ]
    assert all(re.fullmatch(r"staff [0-9a-f]{10}", e.actor) for e in imports)
    assert not any("sofie" in e.actor for e in audit)


async def test_a_consultation_is_changed_from_its_kept_file_and_earlier_versions_stay(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    """The file as uploaded (comments, Windows line ends and all) is kept with the consultation:
    its page offers it to download and to edit in the import form; each import that changed
    the text adds a version, and the earlier ones stay downloadable."""
    app, clock = clocked_app
    source = consultation_file("hundeskov", NOW - timedelta(hours=1), NOW + timedelta(days=20))
    uploaded = ("# Hundeskoven, skrevet af Sofie\n" + source).replace("\n", "\r\n")
    async with logged_in(app, "staff") as staff:
        async with staff.post(LIST, data=upload(await token_of(staff), uploaded.encode())) as done:
            assert done.status == 200
        page = html.unescape(await page_text(staff, f"{LIST}/hundeskov"))
        files = section(page, "file-heading")
        assert "Senest importeret" in files
        assert "Tidligere udgaver" not in files
        (first,) = re.findall(rf'href="{LIST}/hundeskov/files/(\d+)" download', files)
        async with staff.get(f"{LIST}/hundeskov/files/{first}") as download:
            assert download.status == 200
            assert await download.read() == uploaded.encode()
            assert download.headers["Content-Disposition"] == (
                'attachment; filename="hundeskov-2026-12-01-110000.yaml"'
            )
        # "Edit": the import form holds the newest file and says which consultation it is.
        assert f'href="{LIST}?edit=hundeskov#source"' in page
        editing = html.unescape(await page_text(staff, f"{LIST}?edit=hundeskov"))
        assert textarea_of(editing) == uploaded
        assert "Du retter »Ny friluftspolitik« ud fra filen importeret" in editing

        # The same text again keeps no second copy; a changed one is the newest version.
        clock.now += timedelta(minutes=5)
        await post_form(staff, LIST, LIST, {"source": uploaded})
        changed = uploaded.replace("Ny friluftspolitik", "Hundeskov i Nordparken")
        updated = await post_form(staff, LIST, LIST, {"source": changed})
        assert "er opdateret" in await updated.text()
        files = section(html.unescape(await page_text(staff, f"{LIST}/hundeskov")), "file-heading")
        assert "Tidligere udgaver (1)" in files
        newest, earlier = re.findall(rf'href="{LIST}/hundeskov/files/(\d+)" download', files)
        assert earlier == first
        async with staff.get(f"{LIST}/hundeskov/files/{newest}") as download:
            assert (await download.text()).replace("\r\n", "\n") == changed.replace("\r\n", "\n")
        async with staff.get(f"{LIST}/hundeskov/files/{earlier}") as download:
            assert await download.read() == uploaded.encode()
        async with staff.get(f"{LIST}/hundeskov/files/999") as missing:
            assert missing.status == 404
        # Another consultation's address does not lead to this one's file.
        other = consultation_file("budget", NOW - timedelta(hours=1), NOW + timedelta(days=20))
        await import_consultation(app, other, now=NOW)
        async with staff.get(f"{LIST}/budget/files/{first}") as elsewhere:
            assert elsewhere.status == 404


async def test_a_check_says_what_an_import_would_change_and_imports_nothing(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    app, _ = clocked_app
    source = consultation_file("hundeskov", NOW - timedelta(hours=1), NOW + timedelta(days=20))
    async with logged_in(app, "staff") as staff:
        form = upload(await token_of(staff), source.encode(), action="check")
        async with staff.post(LIST, data=form) as checked:
            assert checked.status == 200
            page = html.unescape(await checked.text())
        assert "Filen er i orden, og intet er importeret endnu. Efter en import findes" in page
        # The uploaded file's text is in the form, for "Importér" to take as it is.
        assert textarea_of(page) == source
        assert await model_rows(app, Consultation) == []

        await post_form(staff, LIST, LIST, {"source": source})
        # A week longer, a new title, a question reworded.
        longer = consultation_file("hundeskov", NOW - timedelta(hours=1), NOW + timedelta(days=27))
        changed = longer.replace("Ny friluftspolitik", "Hundeskov i Nordparken").replace(
            "Hvor gammel er du?", "Hvilken aldersgruppe er du i?"
        )
        checked = await post_form(staff, LIST, LIST, {"source": changed, "action": "check"})
        page = html.unescape(await checked.text())
        assert "Efter en import har høringen »Hundeskov i Nordparken« (hundeskov)" in page
        assert "Ændret: titel (title), runder (rounds)" in page
        assert "Ændrede spørgsmål: »Hvilken aldersgruppe er du i?« (age_band)" in page
        assert (
            "Runde 1: 1. december 2026 kl. 10:00 – 28. december 2026 kl. 11:00 "
            "(før: 1. december 2026 kl. 10:00 – 21. december 2026 kl. 11:00)"
        ) in page
        assert textarea_of(page) == changed
        same = await post_form(staff, LIST, LIST, {"source": source, "action": "check"})
        assert "ser allerede sådan ud – en import ændrer intet." in html.unescape(await same.text())
    (consultation,) = [row[0] for row in await model_rows(app, Consultation)]
    assert consultation.title["da"] == "Ny friluftspolitik"
    audit = [row[0] for row in await model_rows(app, ModerationLogEntry)]
    assert [entry.event for entry in audit if entry.event != "staff_login"] == [
        "consultation_imported"
    ]


async def test_a_check_names_the_ideas_phases_new_times_beside_the_old(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    """A file whose ideas phase moved, came or went: the report says so with the times, as it
    does for a round (it said only "ideas" among the changed fields)."""
    app, _ = clocked_app
    plain = consultation_file("hundeskov", NOW - timedelta(hours=1), NOW + timedelta(days=20))
    await import_consultation(app, with_ideas_phase(plain, NOW, NOW + timedelta(days=20)), now=NOW)
    moved = with_ideas_phase(plain, NOW, NOW + timedelta(days=27))
    async with logged_in(app, "staff") as staff:
        checked = await post_form(staff, LIST, LIST, {"source": moved, "action": "check"})
        page = html.unescape(await checked.text())
        assert (
            "Idéfasen: 1. december 2026 kl. 11:00 – 28. december 2026 kl. 11:00 "
            "(før: 1. december 2026 kl. 11:00 – 21. december 2026 kl. 11:00)"
        ) in page
        dropped = await post_form(staff, LIST, LIST, {"source": plain, "action": "check"})
        assert "Idéfasen udgår (var 1. december 2026 kl. 11:00 – 21. december 2026" in (
            html.unescape(await dropped.text())
        )


async def test_an_admin_deletes_a_closed_consultation_after_typing_its_slug(
    clocked_app: tuple[BorgerDialog, Clock], fake_bot: FakeBot
) -> None:
    app, clock = clocked_app
    source = consultation_file("friluftsliv", NOW - timedelta(days=1), NOW + timedelta(days=20))
    await import_consultation(app, source, now=NOW)
    await answer_all(Citizen(fake_bot, 7302))
    page_path, action = f"{LIST}/friluftsliv", f"{LIST}/friluftsliv/delete"
    confirmed = {"confirm": "yes", "slug": "friluftsliv"}
    async with logged_in(app, "staff") as staff:
        assert "delete-heading" not in await page_text(staff, page_path)
        token = csrf_of(await page_text(staff, page_path))
        async with staff.post(action, data={**confirmed, "csrf": token}) as refused:
            assert refused.status == 403
    async with logged_in(app, "admin") as admin:
        page = html.unescape(await page_text(admin, page_path))
        deleting = section(page, "delete-heading")
        assert "med 1 deltagelse(r), 8 svar, 0 udsagn og 0 stemme(r)" in deleting
        assert "1 borger(e), der kun deltog her, bliver glemt" in deleting
        assert "Høringen er åben, og borgere deltager i den. Luk den først" in deleting
        assert "<form" not in deleting
        still_open = await post_form(admin, page_path, action, confirmed)
        assert still_open.status == 400
    # Closed: the form is there, and wants the box and the slug.
    clock.now = NOW + timedelta(days=21)
    async with logged_in(app, "admin") as admin:
        assert 'action="/admin/consultations/friluftsliv/delete"' in await page_text(
            admin, page_path
        )
        for wrong in ({"slug": "friluftsliv"}, {"confirm": "yes", "slug": "frilufts"}):
            refused = await post_form(admin, page_path, action, wrong)
            assert refused.status == 400
            assert "Høringen er ikke slettet: sæt kryds, og skriv kortnavnet friluftsliv." in (
                html.unescape(await refused.text())
            )
        assert len(await model_rows(app, Consultation)) == 1
        done = await post_form(admin, page_path, action, confirmed)
        assert done.status == 303  # to the list: a reload must not post the deletion again
        listing = html.unescape(await page_text(admin, done.headers["Location"]))
        assert "Høringen friluftsliv er slettet med alt, hvad borgerne gav den." in listing
        async with admin.get(page_path) as gone:
            assert gone.status == 404
        # The notice is said only of a consultation that is not there.
        await import_consultation(app, consultation_file("andet", NOW, NOW + timedelta(days=9)))
        claimed = html.unescape(await page_text(admin, f"{LIST}?deleted=andet"))
        assert "er slettet med alt" not in claimed
    assert [row[0].slug for row in await model_rows(app, Consultation)] == ["andet"]
    assert await model_rows(app, Participation) == []
    audit = [row[0] for row in await model_rows(app, ModerationLogEntry)]
    assert [
        (e.event, e.consultation, e.reason) for e in audit if e.event == "consultation_deleted"
    ] == [("consultation_deleted", "friluftsliv", "p1 a8 s0 v0 f1")]
    # The trail's page says what the deletion took, in the reader's language.
    async with logged_in(app, "admin") as admin:
        trail = html.unescape(await page_text(admin, "/admin/audit"))
    assert "Slettet: 1 deltagelse(r), 8 svar, 0 udsagn, 0 stemme(r); 1 borger(e) glemt" in trail


def hidden(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)
    assert found, name
    return found.group(1)


async def test_an_edit_started_from_an_older_version_or_naming_another_slug_asks_again(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    """Two colleagues edit the same consultation: the second import does not silently undo
    the first; a file that names another consultation is not imported over the one edited.
    Pressing "Importér" again after the warning does it anyway."""
    app, _ = clocked_app
    source = consultation_file("hundeskov", NOW - timedelta(hours=1), NOW + timedelta(days=20))
    await import_consultation(app, source, now=NOW)
    async with logged_in(app, "staff") as first, logged_in(app, "admin") as second:
        form_a = await page_text(first, f"{LIST}?edit=hundeskov")
        form_b = await page_text(second, f"{LIST}?edit=hundeskov")
        started = hidden(form_a, "based_on")
        assert hidden(form_b, "based_on") == started
        # The form comes first when editing: the lists would push it off the screen.
        assert form_a.index('id="import-heading"') < form_a.index('id="group-open"')

        def edited(page: str, text: str) -> dict[str, str]:
            return {"source": text, "editing": "hundeskov", "based_on": hidden(page, "based_on")}

        text_a = source.replace("Hvor gammel er du?", "Hvor gammel er du nu?")
        done = await post_form(first, LIST, LIST, edited(form_a, text_a))
        assert done.status == 200
        after_a = await done.text()
        assert "er opdateret" in after_a
        assert hidden(after_a, "based_on") != started  # tied to the version just written

        text_b = source.replace("Ny friluftspolitik", "Hundeskov i Nordparken")
        refused = await post_form(second, LIST, LIST, edited(form_b, text_b))
        assert refused.status == 409
        page = html.unescape(await refused.text())
        assert "Intet er importeret: høringen er ændret af en anden, siden du åbnede filen" in page
        assert textarea_of(page) == text_b
        (consultation,) = [row[0] for row in await model_rows(app, Consultation)]
        assert consultation.title["da"] == "Ny friluftspolitik"
        # Pressing again replaces the colleague's version, knowingly.
        again = await post_form(second, LIST, LIST, edited(page, text_b))
        assert again.status == 200
        (consultation,) = [row[0] for row in await model_rows(app, Consultation)]
        assert consultation.title["da"] == "Hundeskov i Nordparken"
        # The audit page finds a consultation's entries by a word of its title too.
        trail = await page_text(second, "/admin/audit?consultation=nordparken")
        assert trail.count("<td>Høring oprettet eller opdateret fra fil</td>") == 2

        form_c = await page_text(first, f"{LIST}?edit=hundeskov")
        other = text_b.replace("slug: hundeskov", "slug: hundeskov-2")
        refused = await post_form(first, LIST, LIST, edited(form_c, other))
        assert refused.status == 409
        page = html.unescape(await refused.text())
        assert "du retter »Hundeskov i Nordparken« (hundeskov), men filen er til høringen" in page
        assert 'name="editing"' not in page
        assert len(await model_rows(app, Consultation)) == 1
        created = await post_form(first, LIST, LIST, {"source": textarea_of(page)})
        assert "(hundeskov-2) er oprettet" in html.unescape(await created.text())

        # A file chosen while the box still holds the text the edit link put there: the file.
        form_d = await page_text(first, f"{LIST}?edit=hundeskov")
        fields = {"editing": "hundeskov", "based_on": hidden(form_d, "based_on")}
        fields["source"] = textarea_of(form_d).replace("\n", "\r\n")  # as a browser sends it
        chosen = text_b.replace("Hundeskov i Nordparken", "Hundeskov ved søen").encode()
        async with first.post(LIST, data=upload(csrf_of(form_d), chosen, **fields)) as done:
            assert done.status == 200, await done.text()
        titles = sorted(row[0].title["da"] for row in await model_rows(app, Consultation))
        assert titles == ["Hundeskov i Nordparken", "Hundeskov ved søen"]


async def test_two_colleagues_importing_edits_at_the_same_moment_go_one_after_the_other(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    """The first colleague's import is still running (its unit holds the consultation) when the
    second presses "Importér" on an edit of the same version: the second waits, then finds the
    consultation changed meanwhile and imports nothing. Before, on PostgreSQL, both passed the
    check and the second silently replaced the first."""
    app, _ = clocked_app
    assert app.engine is not None
    source = consultation_file("hundeskov", NOW - timedelta(hours=1), NOW + timedelta(days=20))
    await import_consultation(app, source, now=NOW)
    uow = UnitOfWorkFactory(create_session_factory(app.engine))
    async with logged_in(app, "admin") as second:
        form = await page_text(second, f"{LIST}?edit=hundeskov")
        text_b = source.replace("Ny friluftspolitik", "Hundeskov i Nordparken")
        fields = {"source": text_b, "editing": "hundeskov", "based_on": hidden(form, "based_on")}
        async with uow() as first:
            consultation = await first.consultations.by_slug("hundeskov")
            assert consultation is not None
            await first.consultations.lock(consultation.id)
            pressed = asyncio.create_task(post_form(second, LIST, LIST, fields))
            await asyncio.sleep(0.5)
            assert not pressed.done()  # waits for the first import to end
            text_a = source.replace("Hvor gammel er du?", "Hvor gammel er du nu?")
            await import_definition(first, parse_definition(text_a, app.settings.zone), NOW)
            await first.commit()
        refused = await asyncio.wait_for(pressed, 30)
        assert refused.status == 409
        page = html.unescape(await refused.text())
        assert "Intet er importeret: høringen er ændret af en anden, siden du åbnede filen" in page
    (stored,) = [row[0] for row in await model_rows(app, Consultation)]
    assert stored.title["da"] == "Ny friluftspolitik"


async def test_a_consultation_without_a_kept_file_says_how_to_get_one(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    """Imported before files were kept (or from Pol.is): the page says so, and an edit link
    from somewhere else explains instead of showing an empty form."""
    app, _ = clocked_app
    source = consultation_file("hundeskov", NOW - timedelta(hours=1), NOW + timedelta(days=20))
    assert app.engine is not None
    uow = UnitOfWorkFactory(create_session_factory(app.engine))
    async with uow() as unit:
        definition = replace(parse_definition(source, app.settings.zone), source="")
        await import_definition(unit, definition, NOW)
        await unit.commit()
    async with logged_in(app, "staff") as staff:
        page = html.unescape(await page_text(staff, f"{LIST}/hundeskov"))
        assert "borgerdialog har ingen fil til denne høring" in section(page, "file-heading")
        assert "?edit=hundeskov" not in page
        editing = html.unescape(await page_text(staff, f"{LIST}?edit=hundeskov"))
        assert "Der er ingen fil at rette for høringen »hundeskov«." in editing
        assert textarea_of(editing) == ""


async def test_removing_answered_questions_needs_the_tick_and_says_so_in_danish(
    clocked_app: tuple[BorgerDialog, Clock], fake_bot: FakeBot
) -> None:
    app, _ = clocked_app
    source = consultation_file("friluftsliv", NOW - timedelta(days=1), NOW + timedelta(days=20))
    await import_consultation(app, source, now=NOW)
    await answer_all(Citizen(fake_bot, 7301))
    without = re.sub(r"\n  # scale:.*?\n  # yesno\n", "\n  # yesno\n", source, flags=re.S)
    assert "satisfaction" not in without
    async with logged_in(app, "staff") as staff:
        refused = await post_form(staff, LIST, LIST, {"source": without})
        page = html.unescape(await refused.text())
        assert refused.status == 409
        assert "har allerede svar: satisfaction (1 svar). Intet er importeret." in page
        assert textarea_of(page) == without
        # Checked first: what would happen, in words that say it has not happened yet.
        checked = await post_form(
            staff, LIST, LIST, {"source": without, "force": "yes", "action": "check"}
        )
        page = html.unescape(await checked.text())
        assert (
            "Spørgsmålet satisfaction bliver arkiveret; dets svar (1) bliver i eksporterne." in page
        )
        assert "satisfaction er arkiveret" not in page
        done = await post_form(staff, LIST, LIST, {"source": without, "force": "yes"})
        assert done.status == 200
        assert "(friluftsliv) er opdateret" in await done.text()


async def test_import_without_the_forms_token_is_refused(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    app, _ = clocked_app
    source = consultation_file("hundeskov", NOW, NOW + timedelta(days=20)).encode()
    async with logged_in(app, "staff") as staff:
        form = aiohttp.FormData()
        form.add_field("file", source, filename="h.yaml")
        async with staff.post(LIST, data=form) as without:
            assert without.status == 403
        async with staff.post(LIST, data=upload("0" * 64, source)) as wrong:
            assert wrong.status == 403
        async with staff.post(LIST, data={"source": source.decode()}) as plain:
            assert plain.status == 403
    assert await model_rows(app, Consultation) == []


async def test_a_file_over_the_limit_is_refused_politely_and_the_pasted_text_kept(
    clocked_app: tuple[BorgerDialog, Clock],
) -> None:
    app, _ = clocked_app
    async with logged_in(app, "staff") as staff:
        token = await token_of(staff)
        big = b"# " + b"x" * MAX_DEFINITION_BYTES + b"\n"
        async with staff.post(LIST, data=upload(token, big, source="slug: noget")) as response:
            assert response.status == 413
            page = await response.text()
        assert "Filen fylder mere end 1 MiB, som er grænsen" in page
        assert textarea_of(page) == "slug: noget"
        # Neither a file nor a text: said so, nothing done.
        response = await post_form(staff, LIST, LIST, {"source": "   "})
        assert response.status == 400
        assert "Vælg en fil, eller indsæt filens tekst." in await response.text()
    assert await model_rows(app, Consultation) == []


# -- one consultation ----------------------------------------------------------------------------


async def test_a_consultations_page_timeline_participation_coverage_and_qr_codes(
    clocked_app: tuple[BorgerDialog, Clock], fake_bot: FakeBot
) -> None:
    app, clock = clocked_app
    await three_consultations(app)
    clock.now = NOW - timedelta(days=2)
    await answer_all(Citizen(fake_bot, 7101))
    clock.now = NOW
    await answer_all(Citizen(fake_bot, 7102))
    base = f"{LIST}/friluftsliv"
    async with logged_in(app, "staff", language="en") as staff:
        page = await page_text(staff, base)
        async with staff.get(f"{base}/qr/web.svg") as web_qr:
            assert web_qr.status == 200
            assert web_qr.content_type == "image/svg+xml"
            web_svg = await web_qr.read()
        async with staff.get(f"{base}/qr/telegram.svg") as telegram_qr:
            telegram_svg = await telegram_qr.read()
        async with staff.get(f"{base}/qr/whatsapp.svg") as missing:
            assert missing.status == 404  # WhatsApp is not configured here
        async with staff.get(f"{LIST}/nowhere") as unknown:
            assert unknown.status == 404
        async with staff.get(f"{base}/chart/participation.svg") as chart:
            assert chart.status == 200
            assert chart.content_type == "image/svg+xml"
            assert "default-src 'self'" in chart.headers["Content-Security-Policy"]
            chart_svg = await chart.text()
    assert "<h1>A new outdoor-recreation policy</h1>" in page
    assert f'href="{base}/results"' in page
    # The timeline: the round with its dates, open now.
    timeline = section(page, "timeline-heading")
    assert "First round" in timeline
    assert "open" in timeline
    assert "28 November 2026" in timeline
    assert "31 December 2026" in timeline
    # Participation: two in total, one today; a chart and the same figures as a table.
    participation = section(page, "participation-heading")
    assert "1 said yes to taking part today." in participation
    assert "2 participants in total." in participation
    assert f'src="{base}/chart/participation.svg"' in participation
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="number">(\d+)</td></tr>', page)
    assert rows == [("28 Nov", "0"), ("29 Nov", "1"), ("30 Nov", "0"), ("1 Dec", "1")]
    assert chart_svg.lstrip().startswith("<?xml")
    assert "<svg" in chart_svg
    # Coverage: the example's quota, under 25s, at least 50; both citizens tapped "Under 25".
    coverage = section(page, "coverage-heading")
    assert "How old are you?" in coverage
    assert "Under 25" in coverage
    assert re.search(r'class="number">50</td>\s*<td class="number">2</td>', coverage)
    assert "not yet" in coverage
    # Links and poster QR codes: the same as 'borgerdialog consultation link' gives.
    web_link = f"{app.settings.public_base_url}/chat?c=friluftsliv"
    telegram_link = f"https://t.me/{fake_bot.me['username']}?start=friluftsliv"
    assert web_link in page
    assert telegram_link in page
    assert web_svg == segno_svg(web_link)
    assert telegram_svg == segno_svg(telegram_link)
    # No public address is set here: the web link names this machine, and the page says so.
    assert "phones cannot open it" in section(page, "links-heading")
    assert "7101" not in page
    assert "7102" not in page


def segno_svg(link: str) -> bytes:
    """The poster SVG segno draws for a link (as tests/test_links_and_examples.py checks)."""
    code = segno.make(link, error="m")
    scale = -(-1000 // code.symbol_size(scale=1, border=4)[0])
    buffer = io.BytesIO()
    code.save(buffer, kind="svg", scale=scale, border=4)
    return buffer.getvalue()


# -- in a browser --------------------------------------------------------------------------------


@BROWSER_DATABASE
async def test_staff_fix_a_file_in_the_browser_and_open_its_page_with_its_chart(
    browser: Any, clocked_app: tuple[BorgerDialog, Clock], fake_bot: FakeBot
) -> None:
    app, _ = clocked_app
    good = consultation_file("hundeskov", NOW - timedelta(days=1), NOW + timedelta(days=20))
    good = good.replace("slug: hundeskov", "slug: friluftsliv")  # the citizens' /start below
    wrong = good.replace("citizen_role: co-design", "citizen_role: co-pilot")
    line = next(n for n, text in enumerate(wrong.splitlines(), 1) if "co-pilot" in text)

    page = await browser_login(browser, app, "staff")
    await page.get_by_role("navigation").get_by_role("link", name="Høringer").click()
    await page.wait_for_url(f"**{LIST}")
    await assert_accessible(page)
    await page.get_by_label("Eller indsæt filens tekst her").fill(wrong)
    await page.get_by_role("button", name="Importér").click()
    alert = page.locator("#mistakes")
    await alert.wait_for()
    assert f"linje {line}: citizen_role: skal være en af co-design" in await alert.inner_text()
    assert await page.get_by_label("Eller indsæt filens tekst her").input_value() == wrong
    await assert_accessible(page)
    # The mistake leads to its line: selected in the text box, and the cursor's line named.
    await alert.get_by_role("link", name=re.compile(f"linje {line}:")).click()
    selected = await page.get_by_label("Eller indsæt filens tekst her").evaluate(
        "box => box.value.slice(box.selectionStart, box.selectionEnd)"
    )
    assert selected == wrong.splitlines()[line - 1]
    assert await page.locator("#source-position").inner_text() == (
        f"Markøren står i linje {line}, kolonne 1."
    )

    await page.get_by_label("Eller indsæt filens tekst her").fill(good)
    await page.get_by_role("button", name="Importér").click()
    await page.get_by_role("status").wait_for()
    assert "er oprettet" in await page.get_by_role("status").inner_text()
    await answer_all(Citizen(fake_bot, 7201))
    await page.get_by_role("link", name="Gå til høringen").click()
    await page.wait_for_url(f"**{LIST}/friluftsliv")
    assert await page.get_by_role("heading", level=1).inner_text() == "Ny friluftspolitik"
    chart = page.get_by_role("img", name=re.compile("Søjlediagram over nye deltagere"))
    await chart.wait_for()
    await page.wait_for_function(
        "Array.from(document.images).every(image => image.complete)", timeout=10_000
    )
    # Loaded under the page's real policy (the context does not bypass it): a real picture.
    assert await chart.evaluate("image => image.naturalWidth") > 0
    qr = page.get_by_role("img", name=re.compile("QR-kode til Webchat"))
    assert await qr.evaluate("image => image.naturalWidth") > 0
    await assert_accessible(page)

    # Later, from its page: the file as imported comes back in the form, to change and import.
    await page.get_by_role("link", name="Ret filen og importér den igen").first.click()
    await page.wait_for_url(f"**{LIST}?edit=friluftsliv#source")
    field = page.get_by_label("Eller indsæt filens tekst her")
    assert await field.input_value() == good
    assert "Du retter »Ny friluftspolitik«" in await page.locator("#editing").inner_text()
    await assert_accessible(page)
    await field.fill(good.replace("Ny friluftspolitik", "Friluftsliv i Nordparken"))
    await page.get_by_role("button", name="Kontrollér uden at importere").click()
    await page.get_by_role("status").wait_for()
    assert "Ændret: titel (title)" in await page.get_by_role("status").inner_text()
    assert "Friluftsliv i Nordparken" in await field.input_value()
    await page.get_by_role("button", name="Importér", exact=True).click()
    await page.get_by_role("status").wait_for()
    assert "er opdateret" in await page.get_by_role("status").inner_text()
    await page.get_by_role("link", name="Gå til høringen").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Friluftsliv i Nordparken"
    await page.get_by_text("Tidligere udgaver (1)").click()
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name=re.compile("Udgaven importeret")).click()
    earlier = Path(await (await waiting.value).path())
    assert await asyncio.to_thread(earlier.read_text, encoding="utf-8") == good
    await page.context.close()


# -- the charts module (the results page draws with it too) --------------------------------------


async def test_every_chart_is_a_standalone_svg_image_drawn_the_same_for_the_same_figures() -> None:
    from bot.admin import charts

    drawn = {
        "bars": await charts.draw(charts.bar_chart_svg, ["a", "b"], [1, 3], "Søjler"),
        "lying bars": await charts.draw(
            charts.bar_chart_svg, ["et langt navn", "b"], [0.25, 0.5], "Andele", horizontal=True
        ),
        "lines": await charts.draw(
            charts.line_chart_svg, ["1. dec.", "2. dec."], {"ja": [1, 2], "nej": [0, 4]}, "Linjer"
        ),
        "histogram": await charts.draw(charts.histogram_svg, [1, 2, 2, 3, 3, 3], "Fordeling"),
        "scatter": await charts.draw(
            charts.scatter_svg, {"A": [(0.0, 1.0), (1.0, 2.0)], "B": [(2.0, 2.0)]}, "Grupper"
        ),
    }
    for name, svg in drawn.items():
        size = re.search(r'<svg [^>]*width="([\d.]+)pt" height="([\d.]+)pt"', svg)
        assert size, name
        assert float(size.group(1)) > 0, name
        assert 'xmlns="http://www.w3.org/2000/svg"' in svg, name
        # An image for <img>: nothing in it runs, and it asks for nothing outside itself.
        assert "<script" not in svg, name
        assert 'href="http' not in svg, name
    assert drawn["bars"] == charts.bar_chart_svg(["a", "b"], [1, 3], "Søjler")
    assert drawn["bars"] != charts.bar_chart_svg(["a", "b"], [1, 4], "Søjler")
    response = charts.svg_response(drawn["bars"])
    assert response.content_type == "image/svg+xml"
    assert response.headers["Cache-Control"] == "no-store"


def test_matplotlib_loads_only_when_a_chart_is_drawn() -> None:
    """Charts are for the dashboard's few readers: the bot serving citizens does not carry
    matplotlib's memory unless someone opens a page with a chart."""
    code = (
        "import sys; import bot.app, bot.admin.charts as charts; "
        "before = 'matplotlib' in sys.modules; "
        "charts.bar_chart_svg(['a', 'b'], [1, 2], 'x'); "
        "print(before, 'matplotlib' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
