"""The content plan in the dashboard (/admin/plan), over real HTTP and the application's clock:
a week's calendar in local time across a clock change, the sheet's rules on the form, edit and
cancel, the audit trail, a sheet's upload, a running broadcast's progress; and in Chromium."""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from PIL import Image

from bot.app import BorgerDialog
from bot.config import Settings
from storage.models import ModerationLogEntry, PlannedPost, PostState
from tests.axe import assert_accessible
from tests.citizens import example_with_round, import_consultation
from tests.clock import Clock
from tests.conftest import eventually, model_rows
from tests.dashboard import (
    BROWSER_DATABASE,
    PASSWORD,
    ROLE_EMAILS,
    add_staff,
    csrf_of,
    logged_in,
    post_form,
)
from tests.fake_telegram import FakeBot, FakeTelegram

ZONE = ZoneInfo("Europe/Copenhagen")
CHANNEL = -100777
# The week of 19–25 October 2026: summer time ends on Sunday the 25th at 03:00 (to 02:00).
DST_WEEK = "2026-W43"


def local(text: str) -> datetime:
    """A Copenhagen wall-clock time in UTC (the first one, where a time happens twice)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZONE).astimezone(UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(local("2026-10-20 10:00"))


@pytest.fixture
def plan_settings(
    fake_bot: FakeBot, fake_telegram: FakeTelegram, make_settings: Callable[..., Settings]
) -> Settings:
    fake_bot.open_channel(CHANNEL)
    return make_settings(
        telegram_token=fake_bot.token,
        telegram_api_url=fake_telegram.api_url,
        public_channel_id=CHANNEL,
        # The tests publish by hand; the scheduler's own check stays out of it.
        plan_check_seconds=300,
    )


@pytest.fixture
async def app(plan_settings: Settings, clock: Clock) -> AsyncIterator[BorgerDialog]:
    application = BorgerDialog(plan_settings, clock=clock)
    await application.start()
    # The round opens on Wednesday and closes on Tuesday after the clocks went back.
    await import_consultation(
        application,
        example_with_round(local("2026-10-21 12:00"), local("2026-10-27 12:00")),
        now=clock.now,
    )
    try:
        yield application
    finally:
        await application.stop()


async def text_of(session: aiohttp.ClientSession, path: str, status: int = 200) -> str:
    async with session.get(path) as page:
        body = await page.text()
        assert page.status == status, (path, page.status, body[:2000])
        return body


def day_section(page: str, day: str) -> str:
    """The calendar's part for one day (id="day-2026-10-25"), up to the next day."""
    start = page.index(">", page.index(f'id="day-{day}"')) + 1
    end = page.find('id="day-', start + 1)
    return page[start : end if end != -1 else len(page)]


def plain(fragment: str) -> str:
    """Text of an HTML fragment: tags dropped, entities read, spaces joined."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def field_of(page: str, name: str) -> str:
    """The form's part for one field: label, hint, mistake and input."""
    start = page.index(f'<label for="f-{name}"')
    start = page.rfind('<div class="field', 0, start)
    return page[start : page.index("</div>", start)]


async def add_post(session: aiohttp.ClientSession, **values: str) -> aiohttp.ClientResponse:
    data = {"action": "save", **values}
    return await post_form(session, "/admin/plan/new", "/admin/plan/new", data)


async def posts(app: BorgerDialog) -> list[PlannedPost]:
    return [row[0] for row in await model_rows(app, PlannedPost)]


async def trail(app: BorgerDialog) -> list[ModerationLogEntry]:
    return [row[0] for row in await model_rows(app, ModerationLogEntry)]


async def test_a_post_moved_out_of_the_night_says_so_beside_its_anchor(
    app: BorgerDialog, clock: Clock
) -> None:
    """A round closing at 23:59: its reminder shows 20:00 beside "1 dag før runde 1 lukker",
    which would look like a mistake without the word why."""
    late = example_with_round(local("2026-10-21 12:00"), local("2026-10-27 23:59"), "aften")
    await import_consultation(app, late, now=clock.now)
    planned = {p.key: p for p in await posts(app)}
    reminder, announcement = planned["auto:aften:1:reminder"], planned["auto:aften:1:announcement"]
    async with logged_in(app, "staff") as staff:
        moved = plain(await text_of(staff, f"/admin/plan/{reminder.id}"))
        kept = plain(await text_of(staff, f"/admin/plan/{announcement.id}"))
    assert "2026-10-26 20:00" in moved
    assert "flyttet ud af natten" in moved
    assert "flyttet ud af natten" not in kept


async def test_staff_plan_posts_and_see_them_on_their_local_days_across_the_clock_change(
    app: BorgerDialog,
) -> None:
    async with logged_in(app, "staff") as staff:
        # Tied to the round's closing: two days (48 hours) before Tuesday 12:00 is Sunday 12:00.
        added = await add_post(
            staff,
            consultation="friluftsliv",
            when="round 1 closes - 2d",
            audience="participants",
            text_da="To dage tilbage – husk at svare!",
            text_en="Two days left – remember to answer!",
        )
        assert added.status == 303, await added.text()
        (post_id,) = re.findall(r"/admin/plan/(\d+)\?done=added", added.headers["Location"])
        # 02:30 on the night the clocks go back happens twice: the first (summer time) is meant.
        # 00:30 on Monday is 23:30 UTC on Sunday: it belongs to Monday, in the next week.
        for when, text in (
            ("2026-10-25 02:30", "Natlig besked"),
            ("2026-10-26 00:30", "Mandag lige efter midnat"),
        ):
            response = await add_post(staff, when=when, audience="channel", text_da=text)
            assert response.status == 303, await response.text()

        page = await text_of(staff, f"/admin/plan?week={DST_WEEK}")
        assert "Uge 43: 19. oktober 2026 – 25. oktober 2026" in plain(page)
        sunday = plain(day_section(page, "2026-10-25"))
        assert sunday.startswith("søndag 25. oktober")
        assert "12:00 ◷ planlagt Opslag #" in sunday
        assert "To dage tilbage – husk at svare!" in sunday
        # Typed as "round 1 closes - 2d" and "participants"; a Danish reader reads Danish words
        # (which the form reads back as well).
        assert "runde 1 lukker - 2 dage" in sunday
        assert "Til: deltagere" in sunday
        assert "02:30 ◷ planlagt" in sunday
        assert "Natlig besked" in sunday
        assert "Mandag lige efter midnat" not in page
        # The round's own posts are in the plan too: the announcement on Wednesday at 12:00.
        assert "12:00 ◷ planlagt Åbning" in plain(day_section(page, "2026-10-21"))
        assert 'href="/admin/plan?week=2026-W42"' in page
        assert 'href="/admin/plan?week=2026-W44"' in page
        # This week is week 43 (the clock says Tuesday the 20th): no link to itself.
        assert "Denne uge" in page
        assert 'href="/admin/plan?week=2026-W43"' not in page
        assert '<script src="/admin/static/plan.js" defer></script>' in page

        monday = plain(day_section(await text_of(staff, "/admin/plan?week=2026-W44"), "2026-10-26"))
        assert "00:30 ◷ planlagt" in monday
        assert "Mandag lige efter midnat" in monday

        # The post's page: its facts, and the publisher's own text for Danish and English readers.
        post_page = plain(await text_of(staff, f"/admin/plan/{post_id}?done=added"))
        assert "Opslaget er planlagt." in post_page
        assert "2026-10-25 12:00 (Europe/Copenhagen) · runde 1 lukker - 2 dage" in post_page
        edit_form = await text_of(staff, f"/admin/plan/{post_id}/edit")
        assert 'value="runde 1 lukker - 2 dage"' in edit_form
        assert 'value="deltagere"' in edit_form
        assert "Dansk To dage tilbage – husk at svare!" in post_page
        assert "Engelsk Two days left – remember to answer!" in post_page

        # An unknown week gets a polite answer and this week.
        unknown = plain(await text_of(staff, "/admin/plan?week=2026-W99", status=400))
        assert "Ugen »2026-W99« findes ikke" in unknown

    (stored,) = [p for p in await posts(app) if p.id == int(post_id)]
    assert stored.due_at == local("2026-10-27 12:00") - timedelta(days=2)
    assert stored.anchor == {"event": "closes", "round": 1, "offset_minutes": -2880}


async def test_a_mistake_comes_back_with_its_message_next_to_the_field_and_the_values_kept(
    app: BorgerDialog,
) -> None:
    before = len(await posts(app))
    async with logged_in(app, "staff") as staff:
        typed = {
            "consultation": "friluftsliv",
            # The last Sunday of March 2027: 02:30 does not exist (the clocks go forward).
            "when": "2027-03-28 02:30",
            "audience": "everybody",
            "text_da": "Hej <b>alle</b>\nAnden linje",
        }
        first = await add_post(staff, **typed)
        assert first.status == 400
        page = await first.text()
        audience = plain(field_of(page, "audience"))
        assert "ukendte modtagere 'everybody': brug kanal, et chat-id, alle, deltagere" in audience
        assert 'aria-invalid="true"' in field_of(page, "audience")
        assert "Der er 1 fejl i formularen." in plain(page)
        # Everything typed is still there, escaped as text.
        assert 'value="2027-03-28 02:30"' in page
        assert 'value="everybody"' in page
        assert "Hej &lt;b&gt;alle&lt;/b&gt;\nAnden linje</textarea>" in page
        assert '<option value="friluftsliv" selected>' in page

        # With the audience right, the time's mistake: the same words as the sheet and /plan add.
        second = await add_post(staff, **{**typed, "audience": "participants"})
        assert second.status == 400
        page = await second.text()
        assert "2027-03-28 02:30 findes ikke i Europe/Copenhagen: urene stilles en time frem" in (
            plain(field_of(page, "when"))
        )
        assert "ukendte modtagere" not in page

        # A phase the consultation does not have, and a past time.
        for when, message in (
            ("round 7 closes - 1d", "høringen har ingen runde 7"),
            ("2026-10-19 09:00", "2026-10-19 09:00 er allerede passeret"),
        ):
            answer = await add_post(staff, **{**typed, "audience": "participants", "when": when})
            assert answer.status == 400
            assert message in plain(field_of(await answer.text(), "when"))
    assert len(await posts(app)) == before, "nothing stored"
    assert not [e for e in await trail(app) if e.event.startswith("plan_")]


async def test_a_bad_time_is_explained_next_to_its_field_in_the_visitors_language(
    app: BorgerDialog,
) -> None:
    typed = {
        "consultation": "friluftsliv",
        "when": "31-01-2027 9.00",
        "audience": "participants",
        "text_da": "Godt nyt",
    }
    for language, message in (
        ("da", "skal være et tidspunkt som 2027-01-31 09:00 (der står '31-01-2027 9.00')"),
        ("en", "must be a time like 2027-01-31 09:00 (got '31-01-2027 9.00')"),
    ):
        async with logged_in(app, "staff", language=language) as staff:
            answer = await add_post(staff, **typed)
            assert answer.status == 400
            page = await answer.text()
            when = field_of(page, "when")
            assert message in plain(when)
            assert 'aria-invalid="true"' in when
            # A mistake is never shown as its catalog key.
            assert "mistake." not in page
            # The audiences suggested are written as the reader writes them, which is read back.
            kanal = "kanal" if language == "da" else "channel"
            assert f'<option value="{kanal}">' in page


async def test_the_preview_stores_nothing_and_shows_what_citizens_get(app: BorgerDialog) -> None:
    before = len(await posts(app))
    async with logged_in(app, "staff", language="en") as staff:
        answer = await post_form(
            staff,
            "/admin/plan/new",
            "/admin/plan/new",
            {
                "action": "preview",
                "consultation": "friluftsliv",
                "when": "round 1 opens + 1h",
                "audience": "channel, everyone",
                "text_da": "Høringen er åben",
                "button_da": "Vær med",
                "button_link": "consultation",
            },
        )
        assert answer.status == 200
        page = plain(await answer.text())
    assert "The post goes out 2026-10-21 13:00 (Europe/Copenhagen). It is not saved yet." in page
    assert "Danish Høringen er åben Vær med → https://t.me/" in page
    assert "?start=friluftsliv" in page
    # No English text: English readers get the Danish one, and the page says so.
    assert "English (no English text: they get the Danish one) Høringen er åben" in page
    assert "Danish · channel and groups Høringen er åben" in page
    assert len(await posts(app)) == before


async def test_staff_edit_and_cancel_a_post_and_the_audit_trail_has_it_by_pseudonym(
    app: BorgerDialog,
) -> None:
    async with logged_in(app, "staff") as staff:
        added = await add_post(
            staff,
            consultation="friluftsliv",
            when="2026-10-23 09:00",
            repeat="daily 3",
            audience="participants",
            text_da="Første udgave",
        )
        post_id = int(added.headers["Location"].split("/")[-1].split("?")[0])
        form = await text_of(staff, f"/admin/plan/{post_id}/edit")
        assert 'value="2026-10-23 09:00"' in form
        assert 'value="daily 3"' in form
        assert "Første udgave</textarea>" in form
        edited = await post_form(
            staff,
            f"/admin/plan/{post_id}/edit",
            f"/admin/plan/{post_id}/edit",
            {
                "action": "save",
                "consultation": "friluftsliv",
                "when": "2026-10-24 10:15",
                "repeat": "",
                "audience": "participants",
                "text_da": "Anden udgave",
                "text_en": "Second version",
            },
        )
        assert edited.status == 303, await edited.text()
        assert edited.headers["Location"] == f"/admin/plan/{post_id}?done=edited"
        (post,) = [p for p in await posts(app) if p.id == post_id]
        assert post.texts == {"da": "Anden udgave", "en": "Second version"}
        assert post.due_at == local("2026-10-24 10:15")
        assert post.repeat is None
        assert post.state == PostState.PLANNED

        # Not without the box that says a cancelled post cannot come back.
        unconfirmed = await post_form(
            staff, f"/admin/plan/{post_id}", f"/admin/plan/{post_id}/cancel", {}
        )
        assert unconfirmed.status == 400
        assert "Opslaget er ikke aflyst: sæt kryds" in plain(await unconfirmed.text())
        (kept,) = [p for p in await posts(app) if p.id == post_id]
        assert kept.state == PostState.PLANNED
        cancelled = await post_form(
            staff, f"/admin/plan/{post_id}", f"/admin/plan/{post_id}/cancel", {"confirm": "yes"}
        )
        assert cancelled.status == 303
        page = plain(await text_of(staff, f"/admin/plan/{post_id}?done=cancelled"))
        assert "Opslaget er aflyst." in page
        assert "⊘ aflyst" in page
        assert "Aflys opslaget" not in page
        assert "Ret opslaget" not in page
        # Too late now for both: the pages say why.
        token = csrf_of(await text_of(staff, "/admin/plan"))
        again_form = {"csrf": token, "confirm": "yes"}
        async with staff.post(f"/admin/plan/{post_id}/cancel", data=again_form) as again:
            assert again.status == 409
            assert f"Opslag #{post_id} kan ikke aflyses: det er aflyst." in plain(
                await again.text()
            )
        async with staff.get(f"/admin/plan/{post_id}/edit") as edit:
            assert edit.status == 409
            assert "Opslaget kan ikke ændres: det er aflyst" in plain(await edit.text())
        # The round's own announcement is the bot's to write: cancel it, but not edit it.
        (automatic,) = [p for p in await posts(app) if p.key == "auto:friluftsliv:1:announcement"]
        async with staff.get(f"/admin/plan/{automatic.id}/edit") as edit:
            assert edit.status == 409
            # It is planned: the page says why it cannot be changed, not that it is planned.
            assert "botten skriver selv teksten" in plain(await edit.text())

    (post,) = [p for p in await posts(app) if p.id == post_id]
    assert post.state == PostState.CANCELLED
    entries = [e for e in await trail(app) if e.event.startswith("plan_")]
    assert [(e.event, e.item_id, e.before, e.after) for e in entries] == [
        ("plan_post_added", post_id, None, "2026-10-23 09:00"),
        ("plan_post_edited", post_id, "2026-10-23 09:00", "2026-10-24 10:15"),
        ("plan_post_cancelled", post_id, "planned", "cancelled"),
    ]
    assert {e.consultation for e in entries} == {"friluftsliv"}
    (actor,) = {e.actor for e in entries}
    assert re.fullmatch(r"staff [0-9a-f]{10}", actor)
    assert ROLE_EMAILS["staff"] not in actor
    assert post.created_by == actor


async def test_a_moderator_is_refused_and_a_form_without_its_token_does_nothing(
    app: BorgerDialog,
) -> None:
    before = len(await posts(app))
    async with logged_in(app, "moderator") as moderator:
        for path in ("/admin/plan", "/admin/plan/new", "/admin/plan/upload", "/admin/plan/1"):
            async with moderator.get(path) as page:
                assert page.status == 403, path
                assert "Ikke for din rolle" in await page.text()
        token = csrf_of(await text_of(moderator, "/admin"))
        data = {"csrf": token, "when": "now", "audience": "channel", "text_da": "Fra moderator"}
        async with moderator.post("/admin/plan/new", data=data) as refused:
            assert refused.status == 403
        overview = await text_of(moderator, "/admin")
        assert "/admin/plan" not in overview
    async with logged_in(app, "staff") as staff:
        forged = {"csrf": "0" * 64, "when": "now", "audience": "channel", "text_da": "Forfalsket"}
        async with staff.post("/admin/plan/new", data=forged, allow_redirects=False) as refused:
            assert refused.status == 403
        (automatic, *_) = await posts(app)
        async with staff.post(
            f"/admin/plan/{automatic.id}/cancel", data={"csrf": "nope"}, allow_redirects=False
        ) as refused:
            assert refused.status == 403
        upload = aiohttp.FormData()
        upload.add_field("csrf", "0" * 64)
        upload.add_field("sheet", b"when,audience,text_da\nnow,channel,Hej\n", filename="p.csv")
        async with staff.post("/admin/plan/upload", data=upload) as refused:
            assert refused.status == 403
        # Staff see the plan in the navigation and on the overview.
        overview = plain(await text_of(staff, "/admin"))
        assert "Indholdsplan" in overview
        assert "Næste: Åbning #" in overview
        # A time as people read it, not the form's 2026-10-21 12:00.
        assert re.search(r"Næste: Åbning #\d+ · \d{1,2}\. [a-zæøå]+ \d{4} kl\. \d\d:\d\d", overview)
    assert len(await posts(app)) == before
    assert (await posts(app))[0].state == PostState.PLANNED


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), "green").save(buffer, format="PNG")
    return buffer.getvalue()


async def upload(
    session: aiohttp.ClientSession,
    name: str,
    sheet: str,
    images: dict[str, bytes] | None = None,
    *,
    dry_run: bool = False,
) -> tuple[int, str]:
    token = csrf_of(await text_of(session, "/admin/plan/upload"))
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    form.add_field("sheet", sheet.encode(), filename=name, content_type="text/csv")
    for image_name, content in (images or {}).items():
        form.add_field("images", content, filename=image_name, content_type="image/png")
    if dry_run:
        form.add_field("dry_run", "yes")
    async with session.post("/admin/plan/upload", data=form) as answer:
        return answer.status, await answer.text()


async def test_a_sheet_with_mistakes_shows_each_row_and_column_and_imports_nothing(
    app: BorgerDialog,
) -> None:
    before = len(await posts(app))
    sheet = (
        "id;høring;tidspunkt;målgruppe;tekst_da;billede;noter\n"
        "a1;friluftsliv;2026-10-22 09:00;participants;Godt nyt;;intern\n"
        "a2;friluftsliv;2026-10-22 10:00;everybody;Forkert målgruppe;;\n"
        "a3;friluftsliv;round 7 closes - 1d;channel;Ingen runde 7;;\n"
        "a4;friluftsliv;2026-10-23 11:00;channel;Med kort;kort.png;\n"
    )
    async with logged_in(app, "staff") as staff:
        status, page = await upload(staff, "plan.csv", sheet)
        assert status == 400
        text = plain(page)
        assert "plan.csv har 3 fejl. Intet er indlæst." in text
        # Each column named as the sheet's own heading writes it.
        assert "3 D (målgruppe) ukendte modtagere 'everybody': brug kanal, et chat-id, alle" in text
        assert "4 C (tidspunkt) høringen har ingen runde 7" in text
        # The upload did not hold the image the row names (no folder "next to the sheet" here).
        assert "5 F (billede) billedet 'kort.png' er ikke uploadet" in text
        assert len(await posts(app)) == before

        fixed = sheet.replace("everybody", "everyone").replace("round 7", "round 1")
        status, page = await upload(staff, "plan.csv", fixed, {"kort.png": png()}, dry_run=True)
        assert status == 200, plain(page)
        assert "plan.csv er i orden: 4 opslag ville blive indlæst." in plain(page)
        assert len(await posts(app)) == before

        status, page = await upload(staff, "plan.csv", fixed, {"kort.png": png()})
        assert status == 200, plain(page)
        assert "4 opslag er indlæst fra plan.csv." in plain(page)
        again_status, again = await upload(staff, "plan.csv", fixed, {"kort.png": png()})
        assert again_status == 200
        assert plain(again).count("opdateret") == 4, "the same sheet again updates, never doubles"

        status, page = await upload(staff, "plan.txt", fixed)
        assert status == 400
        assert "plan.txt: indholdsplanen skal være en .csv- eller .xlsx-fil" in plain(page)

        imported = {p.key: p for p in await posts(app)}
        with_image = imported["sheet:a4"]
        assert with_image.image == png()
        async with staff.get(f"/admin/plan/{with_image.id}/image") as picture:
            assert picture.status == 200
            assert picture.content_type == "image/png"
        assert "Med billede" in plain(await text_of(staff, f"/admin/plan/{with_image.id}"))
    assert len(imported) == before + 4
    assert imported["sheet:a1"].created_by == "sheet"
    (entry, *others) = [e for e in await trail(app) if e.event == "plan_sheet_imported"]
    assert len(others) == 1
    assert (entry.reason, entry.after) == ("4 added", "4 rows")
    assert (others[0].reason, others[0].after) == ("0 added", "4 rows")


async def progress_of(session: aiohttp.ClientSession, post_id: int) -> dict[str, Any]:
    async with session.get(f"/admin/plan/{post_id}/progress") as answer:
        assert answer.status == 200
        assert answer.headers["Cache-Control"] == "no-store"
        return dict(json.loads(await answer.text()))


async def test_the_progress_endpoint_follows_a_running_broadcast(
    app: BorgerDialog, clock: Clock, fake_bot: FakeBot
) -> None:
    delivered, blocked, unknown, flaky = -100201, -100202, -100203, -100204
    for chat in (delivered, blocked, flaky):
        fake_bot.open_channel(chat, "group")
    fake_bot.block(blocked)
    # A server error leaves the message to try again later, by the application's clock: until
    # the test moves it, the broadcast is running with one message waiting.
    fake_bot.inject(500, "Internal Server Error", method="sendMessage", chat_id=flaky)
    async with logged_in(app, "staff") as staff:
        audience = ", ".join(str(chat) for chat in (delivered, blocked, unknown, flaky))
        added = await add_post(staff, when="now", audience=audience, text_da="Vejen er lukket")
        post_id = int(added.headers["Location"].split("/")[-1].split("?")[0])
        assert app.publisher is not None
        assert await app.publisher.publish(post_id)

        async def progress() -> dict[str, Any]:
            return await progress_of(staff, post_id)

        async def three_settled() -> dict[str, Any] | None:
            shown = await progress()
            return shown if shown["done"] == 3 else None

        running = await eventually(three_settled, what="three of four messages settled")
        assert {k: running[k] for k in ("state", "total", "done", "sent", "unreachable")} == {
            "state": "sending",
            "total": 4,
            "done": 3,
            "sent": 1,
            "unreachable": 1,
        }
        assert (running["failed"], running["pending"]) == (1, 1)
        assert running["summary"] == ("3 af 4 færdige · leveret 1 · kan ikke nås 1 · fejlede 1")
        # The calendar and the post's page show the same, for the script to follow.
        calendar = await text_of(staff, "/admin/plan")
        assert f'data-progress="/admin/plan/{post_id}/progress"' in calendar
        assert "➤ sendes" in plain(calendar)
        assert "3 af 4 færdige" in plain(await text_of(staff, f"/admin/plan/{post_id}"))

        clock.now += timedelta(minutes=1)
        assert app.bulk is not None
        app.bulk.wake()

        async def finished() -> dict[str, Any] | None:
            shown = await progress()
            return shown if shown["state"] != "sending" else None

        done = await eventually(finished, what="the broadcast finished")
        assert (done["state"], done["done"], done["sent"], done["pending"]) == ("sent", 4, 2, 0)
        assert "data-progress=" not in await text_of(staff, f"/admin/plan/{post_id}")

        # A post that reached nobody failed: the overview says so.
        lost = await add_post(staff, when="now", audience=str(unknown), text_da="Til ingen")
        lost_id = int(lost.headers["Location"].split("/")[-1].split("?")[0])
        assert await app.publisher.publish(lost_id)

        async def failed() -> bool:
            return (await progress_of(staff, lost_id))["state"] == "failed"

        await eventually(failed, what="the post to nobody failed")
        overview = plain(await text_of(staff, "/admin"))
        assert "1 opslag fejlede:" in overview
        assert f"✕ Opslag #{lost_id}" in overview
        post_page = plain(await text_of(staff, f"/admin/plan/{lost_id}"))
        assert "✕ fejlede" in post_page
        assert "Bemærkning 1× " in post_page
    assert fake_bot.texts(delivered) == ["Vejen er lukket"]
    assert fake_bot.texts(flaky) == ["Vejen er lukket"]


async def browser_login(browser: Any, app: BorgerDialog) -> tuple[Any, Any, list[str]]:
    """A Chromium page logged in as staff through the login form; and its console's errors."""
    await add_staff(app, ROLE_EMAILS["staff"], "staff")
    context = await browser.new_context(locale="da-DK", viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    await page.goto(f"{app.settings.public_base_url}/admin/login")
    await page.get_by_label("E-mail", exact=True).fill(ROLE_EMAILS["staff"])
    await page.get_by_label("Adgangskode", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Log ind").click()
    await page.get_by_role("heading", name="Oversigt").wait_for()
    return context, page, errors


@BROWSER_DATABASE
async def test_staff_plan_a_post_in_the_browser_and_see_it_in_the_calendar(
    browser: Any, app: BorgerDialog
) -> None:
    context, page, errors = await browser_login(browser, app)
    try:
        await page.get_by_role("link", name="Indholdsplan").first.click()
        await page.get_by_role("heading", name="Indholdsplan", level=1).wait_for()
        await assert_accessible(page)
        await page.get_by_role("link", name="Planlæg et opslag").first.click()
        await assert_accessible(page)
        await page.get_by_label("Høring").select_option("friluftsliv")
        when = page.get_by_label("Tidspunkt", exact=True)
        await when.fill("round 1 opens + 2h")
        await page.get_by_label("Modtagere", exact=True).fill("participants")
        danish_text = page.get_by_label("Tekst på dansk", exact=True)
        await danish_text.fill("Kom og vær med i friluftshøringen")
        english_text = page.get_by_label(re.compile("^Tekst på engelsk"))
        await english_text.fill("Join the outdoor consultation")
        await page.get_by_role("button", name="Vis, hvordan det ser ud").click()

        preview = page.get_by_role("region", name="Sådan ser borgerne det")
        await preview.wait_for()
        assert "Det er ikke gemt endnu" in await preview.inner_text()
        danish = preview.get_by_role("figure").filter(has_text="Dansk")
        assert (await danish.locator(".message").inner_text()) == (
            "Kom og vær med i friluftshøringen"
        )
        english = preview.get_by_role("figure").filter(has_text="Engelsk")
        assert (await english.locator(".message").inner_text()) == "Join the outdoor consultation"
        await assert_accessible(page)
        # The form kept what was typed; now plan it.
        assert await when.input_value() == "round 1 opens + 2h"
        await page.get_by_role("button", name="Planlæg").click()
        await page.get_by_text("Opslaget er planlagt.").wait_for()
        await assert_accessible(page)

        await page.get_by_role("link", name="Tilbage til indholdsplanen").click()
        wednesday = page.locator("#day-2026-10-21")
        post = wednesday.locator(".post").filter(has_text="Kom og vær med i friluftshøringen")
        await post.wait_for()
        await assert_accessible(page)
        assert "14:00" in await post.inner_text()
        assert "planlagt" in await post.inner_text()
        # On a phone's width the week is a list by day: one column.
        await page.set_viewport_size({"width": 380, "height": 800})
        columns = await page.locator("ol.week").evaluate(
            "list => getComputedStyle(list).gridTemplateColumns.split(' ').length"
        )
        assert columns == 1
        assert errors == []
    finally:
        await context.close()


@BROWSER_DATABASE
async def test_the_page_follows_a_running_broadcast_without_a_reload(
    browser: Any, app: BorgerDialog, clock: Clock, fake_bot: FakeBot
) -> None:
    delivered, flaky = -100301, -100302
    for chat in (delivered, flaky):
        fake_bot.open_channel(chat, "group")
    fake_bot.inject(500, "Internal Server Error", method="sendMessage", chat_id=flaky)
    async with logged_in(app, "staff") as staff:
        added = await add_post(staff, when="now", audience=f"{delivered}, {flaky}", text_da="Hej")
        post_id = int(added.headers["Location"].split("/")[-1].split("?")[0])
    assert app.publisher is not None
    assert await app.publisher.publish(post_id)
    await eventually(lambda: fake_bot.texts(delivered) == ["Hej"], what="the first delivered")
    context, page, errors = await browser_login(browser, app)
    try:
        base = app.settings.public_base_url
        await page.goto(f"{base}/admin/plan")
        post = page.locator(f'[data-post="{post_id}"]')
        await post.get_by_text("1 af 2 færdige").wait_for()
        assert "sendes" in await post.locator(".state").inner_text()
        await assert_accessible(page)
        # The flaky chat's retry is due once the application's clock moves on.
        clock.now += timedelta(minutes=1)
        assert app.bulk is not None
        app.bulk.wake()
        await post.get_by_text("2 af 2 færdige · leveret 2").wait_for(timeout=20_000)
        await post.locator(".state").get_by_text("sendt").wait_for()
        assert await post.locator("progress").evaluate("bar => [bar.value, bar.max]") == [2, 2]
        await page.goto(f"{base}/admin/plan/{post_id}")
        await assert_accessible(page)
        await page.goto(f"{base}/admin/plan/upload")
        await assert_accessible(page)
        assert errors == []
    finally:
        await context.close()
