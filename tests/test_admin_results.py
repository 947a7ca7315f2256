"""A consultation's results in the dashboard: citizens answer and vote in the fake Telegram, then
staff read the results, record a decision the citizens hear, and download every export."""

from __future__ import annotations

import html
import io
import json
import os
import re
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from bot.app import BorgerDialog
from handlers.ideas.groups import GroupModel
from storage.models import ModerationLogEntry, Participation, Statement
from tests.axe import assert_accessible
from tests.citizens import import_consultation
from tests.conftest import eventually, model_rows
from tests.dashboard import BROWSER_DATABASE, PASSWORD, ROLE_EMAILS, add_staff, logged_in, post_form
from tests.fake_telegram import FakeBot
from tests.ideas import uow_of
from tests.results import (
    COMMENTS,
    OWN_STATEMENT,
    SEEDS,
    SLUG,
    TRANSPORT,
    WORRIES,
    Person,
    results_source,
    small_consultation,
)

PAGE = f"/admin/consultations/{SLUG}/results"
PEOPLE = 12
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard-results.png"


def cells(page: str, label: str) -> list[str]:
    """The cells after a row's header cell ``label`` (the first such row on the page)."""
    found = re.search(
        rf'<th scope="row">{re.escape(html.escape(label))}[^<]*(?:<span[^>]*>[^<]*</span>\s*)*'
        r"</th>(.*?)</tr>",
        page,
        re.S,
    )
    assert found, label
    return [
        html.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", found.group(1), re.S)
    ]


def section(page: str, heading_id: str) -> str:
    """The HTML of the section a heading opens, up to the next section of its level."""
    start = page.index(f'id="{heading_id}"')
    end = page.find("</section>", start)
    return page[start:end]


async def test_staff_read_the_results_decide_and_download_every_export(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    citizens = await small_consultation(app, fake_bot, PEOPLE)
    people = [Person(index) for index in range(PEOPLE)]
    async with logged_in(app, "staff") as session:
        async with session.get(PAGE) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            page = await response.text()

        # Per question, the counts the citizens gave, each chart with its table beside it.
        for label in TRANSPORT:
            count = sum(p.transport == label for p in people)
            assert cells(page, label) == [str(count), f"{round(100 * count / PEOPLE)} %"]
        for worry in {w for chosen in WORRIES for w in chosen}:
            count = sum(worry in p.worries for p in people)
            assert cells(page, worry)[0] == str(count)
        scale = section(page, "q-safety")
        for step in range(1, 6):
            assert cells(scale, str(step))[0] == str(sum(p.safety == step for p in people))
        minutes = section(page, "q-minutes")
        lowest, highest = min(p.minutes for p in people), max(p.minutes for p in people)
        assert f"Fra {lowest} til {highest}" in minutes
        binned = re.findall(r'<th scope="row">[0-9–]+</th><td class="number">(\d+)</td>', minutes)
        assert sum(int(n) for n in binned) == PEOPLE
        for key, caption in (
            ("transport", "Svarene på »Hvordan kommer dit barn i skole?«"),
            ("worries", "Svarene på »Hvad bekymrer dig på vejen?«"),
            ("safety", "Svarene på »Hvor tryg er skolevejen i dag?«"),
            ("minutes", "Svarene på »Hvor mange minutter tager turen?«"),
        ):
            assert f"<caption>{html.escape(caption)}</caption>" in page
            chart = f"{PAGE}/charts/questions/{key}.svg"
            assert f'src="{chart}"' in page
            async with session.get(chart) as image:
                assert image.status == 200
                assert image.content_type == "image/svg+xml"
                assert "<svg" in await image.text()

        # Free texts with their screening state, flags and language; personal data masked.
        free = section(page, "q-comment")
        assert f"{len(COMMENTS)} svar" in free
        assert f"{PEOPLE - len(COMMENTS)} sprang over" in free
        assert "Ring til mig på ▒▒▒, så fortæller jeg mere om krydset" in free
        assert "Skriv til mig på ▒▒▒ om stien" in free
        assert free.count("holdt tilbage") == 2
        assert "Telefonnummer" in free
        assert "E-mailadresse" in free
        assert html.escape(COMMENTS[1]) in free
        assert "engelsk" in free

        # Statements: the votes per statement, consensus and divisive, the groups.
        statements = {s.number: s for s in [row[0] for row in await model_rows(app, Statement)]}
        # Each statement's votes as the citizens cast them (an author never votes on their own).
        for text in (*SEEDS, OWN_STATEMENT):
            voters = people[1:] if text == OWN_STATEMENT else people
            chosen = Counter(p.choice(text) for p in voters)
            expected = [chosen["👍 Enig"], chosen["👎 Uenig"], chosen["🤷 Ved ikke"]]
            shares = [round(100 * n / len(voters)) for n in expected]
            assert cells(page, text)[2:5] == [
                f"{n} ({s} %)" for n, s in zip(expected, shares, strict=True)
            ]
        consensus = section(page, "statements").split("Det deler grupperne")[0]
        assert f"5. {SEEDS[4]} (100 % enige)" in html.unescape(consensus)

        async with uow_of(app).read() as uow:
            consultation = await uow.consultations.by_slug(SLUG)
            assert consultation is not None
            stored = await uow.ideas.groups(consultation.id)
        assert stored is not None
        model = GroupModel.from_document(stored.model)
        pseudonyms = {p.id: p.pseudonym for (p,) in await model_rows(app, Participation)}
        groups = section(page, "groups")
        assert f"{PEOPLE} deltagere fordeler sig i {len(model.sizes)} grupper" in groups
        assert f'src="{PAGE}/charts/groups.svg"' in groups
        for index, size in enumerate(model.sizes):
            assert cells(groups, f"Gruppe {chr(65 + index)}")[0] == str(size)
        for participation, group in model.members.items():
            assert cells(groups, pseudonyms[participation])[0] == f"Gruppe {chr(65 + group)}"
        # The two camps are in different groups: nobody shares a group across camps.
        by_user = {p.user_id: p for p in people}
        camps_per_group: Counter[tuple[int, str]] = Counter()
        async with uow_of(app).read() as uow:
            for participation_id, group in model.members.items():
                member = await uow.participations.get(participation_id)
                assert member is not None
                participant = await uow.participants.by_id(member.participant_id)
                assert participant is not None
                camps_per_group[(group, by_user[int(participant.chat_id)].camp)] += 1
        assert len({group for group, _ in camps_per_group}) == len(camps_per_group)
        assert f'src="{PAGE}/charts/statements.svg"' in page
        async with session.get(f"{PAGE}/charts/statements.svg") as image:
            assert image.status == 200
            votes_chart = await image.text()
        for label in ("Enig", "Uenig", "Ved ikke", "Udsagn 6"):
            assert f"<!-- {label} -->" in votes_chart  # matplotlib names its texts so
        async with session.get(f"{PAGE}/charts/groups.svg") as image:
            assert image.status == 200
            assert "<svg" in await image.text()

        # No Telegram id and no citizen's e-mail or phone anywhere on the page.
        for person in people:
            assert str(person.user_id) not in page
        assert "anna.jensen@example.dk" not in page
        assert "22 33 44 55" not in page

        # A decision on Anna's statement: she and a voter who asked to hear back are told.
        number = next(n for n, s in statements.items() if s.text.get("da") == OWN_STATEMENT)
        reason = "Den kommer på budgettet for 2027."
        decided = await post_form(
            session,
            PAGE,
            f"{PAGE}/decision",
            {"number": str(number), "decision": "accepted", "reason": reason, "into": ""},
        )
        assert decided.status == 303
        async with session.get(decided.headers["Location"]) as response:
            after = await response.text()
        told = [p for p in people[1:] if p.hear_back] + [people[0]]
        assert f"Beslutningen om udsagn {number} er registreret. {len(told)} borgere" in after
        assert cells(after, OWN_STATEMENT)[-1].startswith("vedtaget")
        author_news = await eventually(
            lambda: [t for t in citizens[0].texts() if t.startswith("📣 Nyt fra »Trafik")],
            what="the author hears the decision",
        )
        assert "✅ Det er vedtaget." in author_news[0]
        assert reason in author_news[0]
        assert "fordi du skrev udsagnet" in author_news[0]
        voter_news = await eventually(
            lambda: [t for t in citizens[1].texts() if t.startswith("📣 Nyt fra »Trafik")],
            what="a voter hears the decision",
        )
        assert "fordi du stemte om udsagnet" in voter_news[0]
        assert not any(t.startswith("📣") for t in citizens[3].texts())  # said no to hearing

        # Every export downloads, with pseudonyms and without a Telegram id.
        downloads: dict[str, bytes] = {}
        filenames: list[str] = []
        for name in ("csv", "csv?delimiter=,", "xlsx", "json", "polis"):
            assert f'href="{PAGE}/export/{html.escape(name)}"' in page
            async with session.get(f"{PAGE}/export/{name}") as download:
                assert download.status == 200, name
                disposition = download.headers["Content-Disposition"]
                assert disposition.startswith("attachment;")
                filenames.append(disposition.partition('filename="')[2].rstrip('"'))
                downloads[name] = await download.read()
        # Each file its own name in a downloads folder.
        assert filenames == [
            "trafik.csv",
            "trafik-comma.csv",
            "trafik.xlsx",
            "trafik.json",
            "trafik-polis.zip",
        ]
        texts = {
            "csv": downloads["csv"].decode("utf-8-sig"),
            "csv,": downloads["csv?delimiter=,"].decode("utf-8-sig"),
            "json": downloads["json"].decode(),
            "xlsx": _workbook_text(downloads["xlsx"]),
            "polis": _zip_text(downloads["polis"]),
        }
        assert texts["csv"].splitlines()[0].count(";") > 5
        assert texts["csv,"].splitlines()[0].count(",") > 5
        assert len(json.loads(texts["json"])["participants"]) == PEOPLE
        for name, text in texts.items():
            for person in people:
                assert str(person.user_id) not in text, name
            assert "anna.jensen@example.dk" not in text, name
        for pseudonym in pseudonyms.values():
            assert pseudonym in texts["csv"]
            assert pseudonym in texts["xlsx"]

    # The decision and every download are in the audit trail, by the account's pseudonym.
    trail = [row[0] for row in await model_rows(app, ModerationLogEntry)]
    decisions = [e for e in trail if e.event == "statement_decided"]
    assert [(e.consultation, e.after, e.reason) for e in decisions] == [
        (SLUG, "accepted", f"statement {number}")
    ]
    assert decisions[0].actor.startswith("staff ")
    assert ROLE_EMAILS["staff"] not in decisions[0].actor
    exports = sorted(e.after or "" for e in trail if e.event == "results_exported")
    assert exports == ["csv", "csv", "json", "polis", "xlsx"]


def _workbook_text(content: bytes) -> str:
    workbook = load_workbook(io.BytesIO(content))
    return "\n".join(
        str(value)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    )


def _zip_text(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert sorted(archive.namelist()) == [
            "comments.csv",
            "participants-votes.csv",
            "summary.csv",
            "votes.csv",
        ]
        return "\n".join(archive.read(name).decode() for name in archive.namelist())


async def test_a_mistaken_decision_comes_back_filled_in_and_nothing_is_recorded(
    app: BorgerDialog,
) -> None:
    await import_consultation(app, results_source())
    async with logged_in(app, "staff") as session:
        reason = "Det ligner udsagn 2 meget."
        for form, message in (
            ({"number": "1", "decision": "merged", "into": ""}, "Vælg det udsagn, det er lagt"),
            ({"number": "1", "decision": "merged", "into": "1"}, "kan ikke lægges sammen med sig"),
            ({"number": "99", "decision": "accepted", "into": ""}, "Vælg et af høringens udsagn."),
            ({"number": "1", "decision": "", "into": ""}, "Vælg en beslutning."),
            ({"number": "1", "decision": "accepted", "into": "", "reason": "x" * 501}, "500 tegn"),
        ):
            response = await post_form(
                session, PAGE, f"{PAGE}/decision", {"reason": reason, **form}
            )
            assert response.status == 400, form
            page = await response.text()
            assert message in page, form
            # The form comes back as it was sent.
            assert html.escape(form.get("reason", reason)) in page
            if form["decision"]:
                assert f'value="{form["decision"]}" checked' in page
        # Merging works when the other statement is given, and nobody is told (staff's own).
        response = await post_form(
            session,
            PAGE,
            f"{PAGE}/decision",
            {"number": "1", "decision": "merged", "into": "2", "reason": reason},
        )
        assert response.status == 303
        assert response.headers["Location"].endswith("?decided=1&told=0#decisions")
    statements = {s.number: s for s in [row[0] for row in await model_rows(app, Statement)]}
    assert statements[1].decision == "merged"
    assert statements[1].merged_into_id == statements[2].id
    assert all(s.decision is None for n, s in statements.items() if n != 1)


async def test_results_are_for_staff_and_admins_and_decisions_need_the_form_token(
    app: BorgerDialog,
) -> None:
    await import_consultation(app, results_source())
    async with logged_in(app, "moderator") as session:
        for path in (PAGE, f"{PAGE}/export/csv", f"{PAGE}/charts/questions/transport.svg"):
            async with session.get(path) as response:
                assert response.status == 403, path
        response = await session.post(
            f"{PAGE}/decision", data={"number": "1", "decision": "accepted"}
        )
        assert response.status == 403
    async with logged_in(app, "staff") as session:
        # A forged form (no token, or another session's) is refused before anything happens.
        for token in ("", "0" * 64):
            response = await session.post(
                f"{PAGE}/decision",
                data={"number": "1", "decision": "accepted", "csrf": token},
                allow_redirects=False,
            )
            assert response.status == 403
        async with session.get("/admin/consultations/nothing-here/results") as response:
            assert response.status == 404
        async with session.get(f"{PAGE}/export/docx") as response:
            assert response.status == 404
    async with logged_in(app, "admin", language="en") as session:
        async with session.get(PAGE) as response:
            assert response.status == 200
            page = await response.text()
        assert "<h1>Results: Traffic at the school</h1>" in page
        assert "The opinion groups show once at least 10 participants" in page
    assert all(s.decision is None for (s,) in await model_rows(app, Statement))


@BROWSER_DATABASE
async def test_staff_see_the_charts_and_record_a_decision_in_a_browser(
    browser: Any, app: BorgerDialog, fake_bot: FakeBot
) -> None:
    # A screenshot for the README wants a fuller consultation; the test needs ten for groups.
    people = 20 if os.environ.get("BORGERDIALOG_SCREENSHOTS") == "1" else 10
    citizens = await small_consultation(app, fake_bot, people)
    await add_staff(app, ROLE_EMAILS["staff"], "staff")
    context = await browser.new_context(
        base_url=app.settings.public_base_url,
        locale="da-DK",
        viewport={"width": 1280, "height": 900},
    )
    page = await context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    await page.goto("/admin/login")
    await page.get_by_label("E-mail").fill(ROLE_EMAILS["staff"])
    await page.get_by_label("Adgangskode").fill(PASSWORD)
    await page.get_by_role("button", name="Log ind").click()
    await page.wait_for_url("**/admin")
    await page.goto(PAGE)
    await page.get_by_role("heading", name="Resultater: Trafik ved skolen", level=1).wait_for()
    images = page.locator("main img")
    # Four questions with charts, the statements' votes and the groups' map.
    assert await images.count() == 6
    for index in range(await images.count()):
        image = images.nth(index)
        await image.scroll_into_view_if_needed()
        await page.wait_for_function("image => image.complete", arg=await image.element_handle())
        assert await image.evaluate("image => image.naturalWidth") > 0
        assert await image.get_attribute("alt")
    assert refused == []
    await assert_accessible(page)
    # An answer of one 300-letter word wraps in its cell: no column goes off the page.
    overflow = await page.evaluate(
        """() => {
            const cell = document.querySelector("main table.free-texts td");
            cell.textContent = "A".repeat(300);
            const table = cell.closest("table");
            return table.getBoundingClientRect().width - table.parentElement.clientWidth;
        }"""
    )
    assert overflow <= 1
    await page.reload()
    if people == 20:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

    await page.get_by_label("Udsagn", exact=True).select_option(label=f"6. {OWN_STATEMENT}")
    await page.get_by_label("overvejes").check()
    await page.get_by_label("Begrundelse til borgerne").fill("Vi ser på det i foråret.")
    await page.get_by_role("button", name="Registrér og fortæl borgerne").click()
    await (
        page.get_by_role("status")
        .get_by_text("Beslutningen om udsagn 6 er registreret.")
        .wait_for()
    )
    await eventually(
        lambda: any("Vi ser på det i foråret." in t for t in citizens[0].texts()),
        what="the author hears the decision",
    )
    await context.close()


async def test_the_statements_chart_is_a_standalone_svg_with_a_legend_drawn_the_same() -> None:
    from bot.admin import charts

    series = {"enig": [3, 0], "uenig": [1, 2], "ved ikke": [0, 1]}
    drawn = await charts.draw(charts.stacked_bar_chart_svg, ["Udsagn 1", "Udsagn 2"], series, "X")
    assert drawn.lstrip().startswith("<?xml")
    assert "<script" not in drawn
    assert charts.stacked_bar_chart_svg(["Udsagn 1", "Udsagn 2"], series, "X") == drawn
    assert (
        charts.stacked_bar_chart_svg(["Udsagn 1", "Udsagn 2"], {**series, "enig": [3, 1]}, "X")
        != drawn
    )
