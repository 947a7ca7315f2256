"""The content plan over a controllable clock: a 20-post plan for two consultations, run through a
restart, a moved deadline, a cancellation, a daylight-saving change and a round closing while a
citizen is mid-answer."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from pydantic import SecretStr

from bot.app import BorgerDialog
from bot.cli.plan import read_rows
from bot.config import Settings
from handlers.plan.planning import plan_post
from handlers.plan.rules import describe_anchor, describe_audience, parse_anchor, parse_audience
from handlers.plan.sheet import read_sheet, store_sheet
from storage.database import create_engine, create_session_factory
from storage.models import Answer, OutboxMessage, OutboxStatus, PlannedPost, PostState
from storage.uow import UnitOfWorkFactory
from tests.citizens import Citizen, example_with_round, import_consultation
from tests.clock import Clock
from tests.conftest import eventually, migrate_database, table_rows
from tests.fake_graph import FakeGraph
from tests.fake_telegram import (
    TELEGRAM_PRIVATE_BURST,
    FakeBot,
    FakeTelegram,
    SentMessage,
    TokenBucket,
)

ZONE = ZoneInfo("Europe/Copenhagen")
CHANNEL = -100777
STAFF = -100888
STAFF_MEMBER = 931


def local(text: str) -> datetime:
    """A Copenhagen wall-clock time in UTC."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZONE).astimezone(UTC)


SHEET = """id;consultation;when;repeat;audience;text_da;text_en;image;button_da;button_link;notes
a1;friluftsliv;2027-03-20 10:30;;channel;Snart kan du give dit besyv om naturen;;;;;intern note
a2;friluftsliv;round 1 opens + 1h;;everyone;Friluftshøringen er åben;The consultation is open;;;;
a3;friluftsliv;round 1 closes - 2d;;participants;To dage tilbage af friluftshøringen;;;;;
b1;skoler;round 1 closes - 1d;;participants;Skolehøringen lukker i morgen;;;;;
b2;skoler;round 1 closes - 2h;;channel;Sidste chance i skolehøringen;;;;;
r1;;2027-03-26 09:00;daily 3;channel;Godmorgen fra kommunen;;;;;
c1;friluftsliv;2027-03-22 09:00;;segment:district=north;Til jer i Nord: kom til borgermøde;;;;;
x1;;2027-03-22 12:00;;channel;Dette opslag bliver aflyst;;;;;
d1;skoler;2027-03-21 08:00;;channel;Skolehøringen åbner om en time;;;;;
s1;;2027-03-21 14:00;;channel;Dette opslag når botten ikke;;;;;
l1;;2027-03-21 20:00;;channel;Dette opslag kommer for sent;;;;;
e1;;2027-03-23 10:00;;everyone;Nyt fra kommunen;News from the municipality;;;;
i1;friluftsliv;2027-03-23 11:00;;channel;Se kortet over stierne;;kort.png;Vær med;consultation;
u1;friluftsliv;2027-03-29 10:00;;unfinished;Husk at gøre dine svar færdige;;;;;
"""


def write_sheet(folder: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), "green").save(buffer, format="PNG")
    (folder / "kort.png").write_bytes(buffer.getvalue())
    path = folder / "plan.csv"
    path.write_text(SHEET, encoding="utf-8")
    return path


async def import_sheet(app: BorgerDialog, path: Path) -> int:
    """Import the sheet as 'borgerdialog plan import' does, at the app's (test) time."""
    drafts, errors = read_sheet(read_rows(path), lambda name: (path.parent / name).read_bytes())
    assert errors == []
    assert app.uow is not None
    async with app.uow() as uow:
        for _row, draft in drafts:
            await plan_post(uow, draft, app.clock(), ZONE, "sheet")
        await uow.commit()
    return len(drafts)


async def posts(app: BorgerDialog) -> dict[str, PlannedPost]:
    """Every post by its sheet id (or automatic key)."""
    assert app.uow is not None
    async with app.uow() as uow:
        rows = await uow.plan.listing(limit=1000)
    return {(p.key or f"#{p.id}").removeprefix("sheet:"): p for p in rows}


async def run_until(app: BorgerDialog, clock: Clock, when: datetime) -> None:
    """Move the clock to each due time up to ``when`` in turn, as the scheduler's checks would,
    publishing what is due and waiting until it has gone out."""
    assert app.publisher is not None
    assert app.uow is not None
    while True:
        async with app.uow() as uow:
            planned = await uow.plan.listing(states=[PostState.PLANNED], limit=1)
        step = planned[0].due_at if planned and planned[0].due_at <= when else when
        clock.now = max(clock.now, step)
        await app.publisher.publish_due()
        await _drain(app)
        if step == when:
            return


async def _drain(app: BorgerDialog) -> None:

    async def drained() -> bool:
        rows = await table_rows(app, OutboxMessage)
        return not any(r.status == OutboxStatus.PENDING for r in rows)

    await eventually(drained, what="every queued message delivered")


def channel_texts(fake_bot: FakeBot) -> list[str]:
    return fake_bot.texts(CHANNEL)


def staff_texts(fake_bot: FakeBot) -> list[str]:
    return fake_bot.texts(STAFF)


@pytest.fixture
def clock() -> Clock:
    return Clock(local("2027-03-20 10:00"))


@pytest.fixture
def real_time() -> bool:
    """Whether Telegram's per-chat limits hold in real time (the soak run) or are lifted."""
    return False


# The plan runs on the test's clock, days in seconds; Telegram's limits per chat run on the real
# one. Kept, they turn the test into minutes of waiting (20 messages a minute to the channel and
# the staff group, one a second to a citizen) without a check of their own; the soak run keeps
# them.
REAL_TIME = pytest.mark.parametrize(
    "real_time",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["limits-lifted", "real-time"],
)


@pytest.fixture
def plan_settings(
    fake_bot: FakeBot,
    fake_telegram: FakeTelegram,
    make_settings: Callable[..., Settings],
    real_time: bool,
) -> Settings:
    fake_bot.open_channel(CHANNEL)
    fake_bot.send_message(STAFF_MEMBER, "hej", chat_id=STAFF, chat_type="supergroup")
    fake_bot.set_member(STAFF, STAFF_MEMBER, "member")
    settings = make_settings(
        telegram_token=fake_bot.token,
        telegram_api_url=fake_telegram.api_url,
        staff_chat_id=STAFF,
        public_channel_id=CHANNEL,
        # The test publishes by hand at each step; the scheduler's own check stays out of it.
        plan_check_seconds=300,
    )
    if real_time:
        fake_telegram.private_burst = TELEGRAM_PRIVATE_BURST
        return settings
    # (The fake_bot fixture lifted the limit to a citizen's chat already.)
    for chat in (CHANNEL, STAFF):
        fake_bot.chat_buckets[chat] = TokenBucket(capacity=1000, per_second=1000)
    # Past the setting's own limit of 20 (Telegram's), which only the lifted fake allows.
    return settings.model_copy(update={"group_messages_per_minute": 6000})


@pytest.fixture
async def planned_app(plan_settings: Settings, clock: Clock) -> AsyncIterator[BorgerDialog]:
    app = BorgerDialog(plan_settings, clock=clock)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def complete(citizen: Citizen) -> None:
    """Answer the friluftsliv questionnaire to the end and ask to hear back."""
    await citizen.write("/start friluftsliv", new=2)
    await citizen.tap("Ja, jeg giver samtykke")
    await citizen.tap("Under 25")
    await citizen.tap("Nord")
    await citizen.tap("☐ Går tur", new=0)
    await eventually(lambda: "☑ Går tur" in [b["text"] for b in citizen.last().buttons])
    await citizen.tap("Færdig")
    await citizen.tap("4")
    await citizen.tap("Nej")
    await citizen.write("12")
    await citizen.tap("Spring over")
    await citizen.tap("Spring over", new=2)
    await citizen.tap("Ja", new=0)
    await eventually(lambda: (citizen.last().text or "").endswith("✅ Vi giver dig besked her."))


def photos(fake_bot: FakeBot, chat: int) -> list[SentMessage]:
    return [m for m in fake_bot.sent(chat) if m.kind == "photo"]


@REAL_TIME
async def test_a_plan_runs_through_restart_moved_deadline_cancellation_dst_and_closing(
    planned_app: BorgerDialog,
    plan_settings: Settings,
    clock: Clock,
    fake_bot: FakeBot,
    tmp_path: Path,
) -> None:
    app = planned_app
    await import_consultation(
        app,
        example_with_round(local("2027-03-20 12:00"), local("2027-03-31 12:00")),
        now=clock.now,
    )
    await import_consultation(
        app,
        example_with_round(local("2027-03-21 09:00"), local("2027-03-25 18:00"), slug="skoler"),
        now=clock.now,
    )
    assert await import_sheet(app, write_sheet(tmp_path)) == 14
    plan = await posts(app)
    # 14 rows of the sheet and 3 automatic posts per consultation (opening, reminder, results).
    assert len(plan) == 20
    assert sorted(k for k in plan if k.startswith("auto:")) == [
        f"auto:{slug}:1:{kind}"
        for slug in ("friluftsliv", "skoler")
        for kind in ("announcement", "reminder", "results")
    ]
    assert plan["a3"].due_at == local("2027-03-29 12:00")

    # 10:30: the first post reaches the channel, and staff see its progress.
    await run_until(app, clock, local("2027-03-20 10:30"))
    assert channel_texts(fake_bot) == ["Snart kan du give dit besyv om naturen"]
    await eventually(lambda: any("færdig – 1 af 1" in t for t in staff_texts(fake_bot)))

    # 12:00 the round opens by itself: the announcement with a button into the consultation.
    await run_until(app, clock, local("2027-03-20 12:00"))
    announcement = fake_bot.sent(CHANNEL)[-1]
    assert (announcement.text or "").startswith("📣 Ny friluftspolitik er åben for input nu")
    assert announcement.buttons[0]["url"].endswith("?start=friluftsliv")

    # Two citizens: Anna finishes and wants to hear back, Sif stops halfway.
    anna, sif = Citizen(fake_bot, 301), Citizen(fake_bot, 302)
    clock.now = local("2027-03-20 12:30")
    await complete(anna)
    await sif.write("/start friluftsliv", new=2)
    await sif.tap("Ja, jeg giver samtykke")
    await sif.tap("Under 25")
    before = len(anna.messages())
    await run_until(app, clock, local("2027-03-20 13:00"))
    assert anna.texts()[before:] == ["Friluftshøringen er åben"]
    assert "Friluftshøringen er åben" not in sif.texts(), "she did not ask to hear back"

    # A restart in the middle: the bot is down from 12:00 to 20:30 on the 21st.
    await run_until(app, clock, local("2027-03-21 12:00"))
    assert channel_texts(fake_bot)[-2] == "Skolehøringen åbner om en time"
    assert fake_bot.sent(CHANNEL)[-1].buttons[0]["url"].endswith("?start=skoler")
    await app.stop()
    clock.now = local("2027-03-21 20:30")
    app = BorgerDialog(plan_settings, clock=clock)
    await app.start()
    try:
        await run_until(app, clock, clock.now)
        assert channel_texts(fake_bot)[-1] == "Dette opslag kommer for sent"
        assert "Dette opslag når botten ikke" not in channel_texts(fake_bot)
        plan = await posts(app)
        assert plan["l1"].state == PostState.SENT
        assert plan["l1"].late_seconds == 30 * 60
        assert plan["s1"].state == PostState.SKIPPED
        assert "late window of 60 min" in (plan["s1"].error or "")
        # Staff read why in their language; the command line's note stays English.
        missed = "ikke sendt: tidspunktet blev overset med 390 min, mens botten ikke kørte"
        await eventually(
            lambda: any("⛔" in t and missed in t for t in staff_texts(fake_bot)),
            what=f"the skipped post's report in the staff chat: {staff_texts(fake_bot)}",
        )
        await eventually(lambda: any("30 min. for sent" in t for t in staff_texts(fake_bot)))

        # A moved deadline: the school consultation closes two days later; its posts follow.
        clock.now = local("2027-03-22 08:00")
        await import_consultation(
            app,
            example_with_round(local("2027-03-21 09:00"), local("2027-03-27 18:00"), slug="skoler"),
            now=clock.now,
        )
        plan = await posts(app)
        assert plan["b2"].due_at == local("2027-03-27 16:00")
        assert plan["b1"].due_at == local("2027-03-26 18:00")
        assert plan["auto:skoler:1:results"].due_at == local("2027-03-27 18:00")

        # 09:00 the segment post reaches Anna in the north (and nobody else).
        before = len(anna.messages())
        await run_until(app, clock, local("2027-03-22 09:00"))
        assert anna.texts()[before:] == ["Til jer i Nord: kom til borgermøde"]

        # Staff cancel x1 in the staff chat, with a confirmation.
        await cancel_in_staff_chat(fake_bot, plan["x1"].id)
        await run_until(app, clock, local("2027-03-22 12:05"))
        assert "Dette opslag bliver aflyst" not in channel_texts(fake_bot)
        assert (await posts(app))["x1"].state == PostState.CANCELLED

        # English for who reads English; the image goes as a photo with the text as caption.
        await run_until(app, clock, local("2027-03-23 11:00"))
        assert anna.texts()[-1] == "Nyt fra kommunen"
        (photo,) = photos(fake_bot, CHANNEL)
        assert photo.caption == "Se kortet over stierne"
        assert photo.buttons[0]["text"] == "Vær med"

        # Daylight saving begins on the 28th at 02:00: the daily post stays at 09:00 local.
        for day in ("26", "27", "28", "29"):
            await run_until(app, clock, local(f"2027-03-{day} 09:00"))
        repeated = sorted(
            (p for p in (await posts(app)).values() if p.key and p.key.startswith("sheet:r1")),
            key=lambda p: p.occurrence,
        )
        assert [p.due_at.astimezone(ZONE).strftime("%d %H:%M") for p in repeated] == [
            "26 09:00",
            "27 09:00",
            "28 09:00",
        ]
        assert [p.due_at.hour for p in repeated] == [8, 8, 7], "UTC moves with the clocks"
        assert channel_texts(fake_bot).count("Godmorgen fra kommunen") == 3

        # Meanwhile the school round closed on its new date (the 27th), with the last call two
        # hours before and the results to the channel.
        texts = channel_texts(fake_bot)
        last_call = texts.index("Sidste chance i skolehøringen")
        assert texts[last_call + 1].startswith("📊 Ny friluftspolitik er nu lukket.")
        assert texts[last_call - 1] == "Godmorgen fra kommunen"

        # The reminders reach Sif, who started and did not finish, and not Anna.
        await run_until(app, clock, local("2027-03-29 10:00"))
        await run_until(app, clock, local("2027-03-30 12:00"))
        assert "Husk at gøre dine svar færdige" in sif.texts()
        assert any(t.startswith("⏰ Ny friluftspolitik lukker") for t in sif.texts())
        assert not any(t.startswith("⏰") for t in anna.texts())
        assert "To dage tilbage af friluftshøringen" in anna.texts()

        # The round closes while Sif is mid-answer: her answer is refused, not stored.
        answers_before = len(await table_rows(app, Answer))
        await run_until(app, clock, local("2027-03-31 12:00"))
        (closed,) = await sif.tap("Nord")
        assert (closed.text or "").startswith("»Ny friluftspolitik« er lukket")
        assert len(await table_rows(app, Answer)) == answers_before
        # Anna hears the results with a chart; the channel gets the public version.
        (thanks,) = photos(fake_bot, anna.id)
        assert (thanks.caption or "").startswith("🙏 Tak fordi du var med i Ny friluftspolitik!")
        assert "2 deltog, og 1 svarede på alle spørgsmål." in (thanks.caption or "")
        public = photos(fake_bot, CHANNEL)[-1]
        assert (public.caption or "").startswith("📊 Ny friluftspolitik er nu lukket.")
        assert fake_bot.uploads == 2, "each image uploaded once, then sent by its file id"
        final = await posts(app)
        assert {p.state for p in final.values()} == {
            PostState.SENT,
            PostState.SKIPPED,
            PostState.CANCELLED,
        }
    finally:
        await app.stop()


async def cancel_in_staff_chat(fake_bot: FakeBot, post_id: int) -> None:
    sent = len(fake_bot.sent(STAFF))
    fake_bot.send_message(
        STAFF_MEMBER, f"/plan cancel {post_id}", chat_id=STAFF, chat_type="supergroup"
    )
    await eventually(lambda: len(fake_bot.sent(STAFF)) > sent, what="the confirmation")
    question = fake_bot.sent(STAFF)[-1]
    assert "Vil du aflyse dette opslag?" in (question.text or "")
    data = next(b["callback_data"] for b in question.buttons if b["text"] == "Ja, aflys")
    fake_bot.press_button(STAFF_MEMBER, question.message_id, data, chat_id=STAFF)
    await eventually(
        lambda: any(f"Opslag #{post_id} er aflyst" in (m.text or "") for m in fake_bot.sent(STAFF)),
        what="the cancellation confirmed",
    )


class StaffMember:
    """A member of the staff group, talking to the bot there."""

    def __init__(self, fake_bot: FakeBot, user_id: int = STAFF_MEMBER) -> None:
        self.fake = fake_bot
        self.id = user_id

    def last(self) -> SentMessage:
        return self.fake.sent(STAFF)[-1]

    async def write(self, text: str) -> SentMessage:
        before = len(self.fake.sent(STAFF))
        self.fake.send_message(self.id, text, chat_id=STAFF, chat_type="supergroup")
        await eventually(lambda: len(self.fake.sent(STAFF)) > before, what=f"answer to {text!r}")
        return self.last()

    async def tap(self, label: str) -> SentMessage:
        message = next(
            m for m in reversed(self.fake.sent(STAFF)) if any(b["text"] == label for b in m.buttons)
        )
        data = next(b["callback_data"] for b in message.buttons if b["text"] == label)
        before = len(self.fake.sent(STAFF))
        edits = message.edits
        self.fake.press_button(self.id, message.message_id, data, chat_id=STAFF)
        await eventually(
            lambda: len(self.fake.sent(STAFF)) > before or message.edits > edits,
            what=f"answer to the tap on {label!r}",
        )
        return self.last()


async def test_the_automatic_posts_keep_out_of_the_night(
    planned_app: BorgerDialog, clock: Clock
) -> None:
    """A round closing at 23:59 put its reminder at 23:59 the day before, as a notification on
    citizens' phones: it comes at 20:00 that evening now, and the results at 8:00 the morning
    after. A round closing in the afternoon keeps the times as they were; so do staff's posts."""
    app = planned_app
    late = example_with_round(local("2027-03-20 12:00"), local("2027-03-31 23:59"))
    await import_consultation(app, late, now=clock.now)
    plan = await posts(app)
    assert plan["auto:friluftsliv:1:announcement"].due_at == local("2027-03-20 12:00")
    assert plan["auto:friluftsliv:1:reminder"].due_at == local("2027-03-30 20:00")
    assert plan["auto:friluftsliv:1:results"].due_at == local("2027-04-01 08:00")
    # Moved to the afternoon by a new import: the posts follow, with nothing to keep out of.
    afternoon = example_with_round(local("2027-03-20 12:00"), local("2027-03-31 16:00"))
    await import_consultation(app, afternoon, now=clock.now)
    plan = await posts(app)
    assert plan["auto:friluftsliv:1:reminder"].due_at == local("2027-03-30 16:00")
    assert plan["auto:friluftsliv:1:results"].due_at == local("2027-03-31 16:00")
    # A round of one evening: its announcement comes when it opens, not after it closed.
    evening = example_with_round(local("2027-03-25 21:30"), local("2027-03-25 23:00"), "aften")
    await import_consultation(app, evening, now=clock.now)
    plan = await posts(app)
    assert plan["auto:aften:1:announcement"].due_at == local("2027-03-25 21:30")
    assert plan["auto:aften:1:results"].due_at == local("2027-03-26 08:00")
    # Imported at 21:30 the evening before the last day: 20:00 has passed, so the morning after.
    clock.now = local("2027-03-30 21:30")
    late_import = example_with_round(local("2027-03-20 12:00"), local("2027-03-31 23:59"), "sent")
    await import_consultation(app, late_import, now=clock.now)
    plan = await posts(app)
    assert plan["auto:sent:1:reminder"].due_at == local("2027-03-31 08:00")
    # Closed early, at 21:00 (before the import): the reminder has nothing to remind of (not
    # "missed while the bot was not running"); the results wait for the morning.
    closed = example_with_round(local("2027-03-20 12:00"), local("2027-03-30 21:00"), "sent")
    await import_consultation(app, closed, now=clock.now)
    plan = await posts(app)
    reminder = plan["auto:sent:1:reminder"]
    assert reminder.state == PostState.CANCELLED
    assert "nothing to remind of" in (reminder.error or "")
    assert plan["auto:sent:1:results"].due_at == local("2027-03-31 08:00")
    # Moved to close a minute from now: the reminder, now behind, goes at once.
    first = example_with_round(local("2027-03-20 12:00"), local("2027-04-05 12:00"), "kort")
    await import_consultation(app, first, now=clock.now)
    soon = example_with_round(local("2027-03-20 12:00"), local("2027-03-30 21:31"), "kort")
    await import_consultation(app, soon, now=clock.now)
    plan = await posts(app)
    assert plan["auto:kort:1:reminder"].due_at == clock.now
    assert plan["auto:kort:1:reminder"].state == PostState.PLANNED


async def test_staff_plan_and_send_posts_step_by_step_in_the_staff_chat(
    planned_app: BorgerDialog, clock: Clock, fake_bot: FakeBot
) -> None:
    app = planned_app
    await import_consultation(
        app,
        example_with_round(local("2027-03-20 12:00"), local("2027-03-31 12:00")),
        now=clock.now,
    )
    staff = StaffMember(fake_bot)

    # /plan add: consultation, a time in the hour daylight saving skips (refused), a good time.
    asked = await staff.write("/plan add")
    assert "hvilken høring" in (asked.text or "")
    assert "hvornår" in ((await staff.tap("Ny friluftspolitik")).text or "")
    refused = await staff.write("2027-03-28 02:30")
    # The rules' reason in the staff member's language, as the dashboard shows it.
    assert (refused.text or "") == (
        "Det gik ikke: 2027-03-28 02:30 findes ikke i Europe/Copenhagen: urene stilles en time "
        "frem den nat; vælg et tidspunkt uden for den time. Prøv igen."
    )
    await staff.write("round 1 closes - 3d")
    assert "hvem skal have det" in (staff.last().text or "")
    await staff.tap("Deltagere der vil høre tilbage")
    await staff.write("Tre dage tilbage – husk at svare!")
    preview = await staff.write("Three days left – remember to answer!")
    assert "Til: deltagere" in (preview.text or "")
    # Not asked about WhatsApp's template where WhatsApp is not configured.
    assert "WhatsApp" not in (preview.text or "")
    assert "Tre dage tilbage – husk at svare!" in (preview.text or "")
    done = await staff.tap("Planlæg")
    assert (done.text or "").startswith("🗓 Opslag #")
    assert "2027-03-28 12:00" in (done.text or "")
    listing = await staff.write("/plan")
    assert "Opslag · Ny friluftspolitik · 2027-03-28 12:00 (runde 1 lukker - 3 dage)" in (
        listing.text or ""
    )

    # /post: sent now to the channel, after the preview.
    await staff.write("/post")
    await staff.tap("Ingen bestemt høring")
    await staff.tap("Kanalen")
    await staff.write("Rådhuset har åbent til kl. 20 i aften")
    await staff.tap("Spring over")
    sending = await staff.tap("Send nu")
    assert "sendes nu" in (sending.text or "")
    await run_until(app, clock, clock.now)
    assert channel_texts(fake_bot)[-1] == "Rådhuset har åbent til kl. 20 i aften"

    # Someone who left the staff group cannot plan.
    fake_bot.set_member(STAFF, 932, "left")
    refused = await StaffMember(fake_bot, 932).write("/plan add")
    assert "Kun medlemmer af redaktionsgruppen" in (refused.text or "")


async def test_two_processes_racing_publish_each_post_once(
    planned_app: BorgerDialog, plan_settings: Settings, clock: Clock
) -> None:
    """Two publishers with their own database connections (as two processes would have) check
    the same due posts at the same moment: each post is claimed and queued exactly once."""
    from scheduler.publishing import Publisher
    from storage.database import create_engine, create_session_factory
    from storage.uow import UnitOfWorkFactory

    app = planned_app
    assert app.publisher is not None
    assert app.uow is not None
    async with app.uow() as uow:
        for n in range(12):
            await uow.plan.add(
                PlannedPost(
                    kind="message",
                    texts={"da": f"Opslag {n}"},
                    # A chat of its own per post, so the 20-a-minute pacing per chat does not
                    # make the test wait.
                    audience={"channel": False, "chats": [-100900 - n], "subscribers": None},
                    occurrence=1,
                    due_at=clock.now - timedelta(seconds=n),
                    state=PostState.PLANNED,
                    recipients=0,
                    created_by="test",
                    created_at=clock.now,
                    updated_at=clock.now,
                )
            )
        await uow.commit()
    assert app.core is not None
    texts_in = app.core.texts
    engines = [create_engine(plan_settings.database_url) for _ in range(2)]
    try:
        publishers = [
            Publisher(
                uow=UnitOfWorkFactory(create_session_factory(engine)),
                clock=clock,
                texts_in=texts_in,
                settings=app.publisher.settings,
                link=app.consultation_link,
                channels=lambda: ["telegram"],
                deliver_chat=lambda _c, _i: asyncio.sleep(0),
            )
            for engine in engines
        ]
        first, second = await asyncio.gather(*(p.publish_due() for p in publishers))
    finally:
        for engine in engines:
            await engine.dispose()
    # The running app's own check may take some too; nobody takes one twice.
    assert len(first + second) == len(set(first + second))
    rows = [r for r in await table_rows(app, OutboxMessage) if r.post_id is not None]
    per_post: dict[int, int] = {}
    for row in rows:
        per_post[row.post_id] = per_post.get(row.post_id, 0) + 1
    assert sorted(per_post.values()) == [1] * 12, "every post queued once, by one publisher"


async def test_staff_name_the_whatsapp_template_in_the_staff_chat_when_whatsapp_is_on(
    plan_settings: Settings, fake_graph: FakeGraph, clock: Clock, fake_bot: FakeBot
) -> None:
    whatsapp = fake_graph.settings(plan_settings.http_port)
    settings = plan_settings.model_copy(
        update={
            "whatsapp_token": SecretStr(whatsapp["whatsapp_token"]),
            "whatsapp_phone_number_id": whatsapp["whatsapp_phone_number_id"],
            "whatsapp_app_secret": SecretStr(whatsapp["whatsapp_app_secret"]),
            "whatsapp_verify_token": SecretStr(whatsapp["whatsapp_verify_token"]),
            "whatsapp_api_url": whatsapp["whatsapp_api_url"],
        }
    )
    assert settings.whatsapp_enabled
    app = BorgerDialog(settings, clock=clock)
    await app.start()
    try:
        await import_consultation(
            app,
            example_with_round(local("2027-03-20 12:00"), local("2027-03-31 12:00")),
            now=clock.now,
        )
        staff = StaffMember(fake_bot)

        # To subscribers: after the English text, the template, checked as the sheet checks it.
        await staff.write("/plan add")
        await staff.tap("Ny friluftspolitik")
        await staff.write("round 1 closes - 3d")
        await staff.tap("Deltagere der vil høre tilbage")
        await staff.write("Tre dage tilbage – husk at svare!")
        asked = await staff.tap("Spring over")
        assert "hvilken godkendt WhatsApp-skabelon" in (asked.text or "")
        assert [b["text"] for b in asked.buttons] == ["Ingen skabelon", "Drop kladden"]
        refused = await staff.write("Borgerdialog Nyt")
        assert "'Borgerdialog Nyt' er ikke navnet på en WhatsApp-skabelon (små bogstaver" in (
            refused.text or ""
        )
        preview = await staff.write("borgerdialog_nyt")
        assert "WhatsApp-skabelon: borgerdialog_nyt" in (preview.text or "")
        planned = await staff.tap("Planlæg")
        assert (planned.text or "").startswith("🗓 Opslag #")

        # Or none: those outside the 24-hour window are then skipped (and reported).
        await staff.write("/plan ny")
        await staff.tap("Ny friluftspolitik")
        await staff.write("round 1 closes - 1d")
        await staff.tap("Deltagere der vil høre tilbage")
        await staff.write("I morgen lukker vi")
        await staff.tap("Spring over")
        preview = await staff.tap("Ingen skabelon")
        assert "WhatsApp-skabelon: ingen" in (preview.text or "")
        await staff.tap("Planlæg")

        # To the public channel only: no WhatsApp citizen gets it, so no question about it.
        await staff.write("/plan add")
        await staff.tap("Ingen bestemt høring")
        await staff.write("2027-03-25 09:00")
        await staff.tap("Kanalen")
        await staff.write("Borgermøde i aften")
        preview = await staff.tap("Spring over")
        assert "Sådan bliver opslaget" in (preview.text or "")
        assert "WhatsApp" not in (preview.text or "")
        await staff.tap("Planlæg")

        posts = sorted(await table_rows(app, PlannedPost), key=lambda p: p.id)
        staff_posts = [p for p in posts if p.created_by.startswith("staff")]
        assert [p.whatsapp_template for p in staff_posts] == ["borgerdialog_nyt", None, None]
    finally:
        await app.stop()


@pytest.mark.parametrize(
    ("anchor", "audience", "danish"),
    [
        ("round 1 closes - 2d", "participants", ("runde 1 lukker - 2 dage", "deltagere")),
        ("ideas opens + 1h", "channel, everyone", ("idéer åbner + 1 time", "kanal, alle")),
        (
            "round 2 opens + 90m",
            "unfinished, -100123",
            ("runde 2 åbner + 90 minutter", "-100123, ufærdige"),
        ),
        ("round 1 closes - 1d", "decision:4", ("runde 1 lukker - 1 dag", "beslutning:4")),
    ],
)
def test_phases_and_audiences_are_written_back_in_the_readers_words_and_read_again(
    anchor: str, audience: str, danish: tuple[str, str]
) -> None:
    """The dashboard and the staff chat show a post's phase and audience in the reader's
    language; written back into a form, either language means the same post."""
    parsed_anchor, parsed_audience = parse_anchor(anchor), parse_audience(audience)
    assert parsed_anchor is not None
    assert (
        describe_anchor(parsed_anchor, "da"),
        describe_audience(parsed_audience, "da"),
    ) == danish
    for language in ("da", "en"):
        assert parse_anchor(describe_anchor(parsed_anchor, language)) == parsed_anchor
        assert parse_audience(describe_audience(parsed_audience, language)) == parsed_audience


async def test_a_large_sheet_gives_the_chats_their_turns_and_replaces_by_id(
    database_url: str,
) -> None:
    """Checking and storing a sheet of 2,000 rows once held the event loop (and so every chat)
    until it was done: on SQLite a unit of work runs on the loop. The chats get turns while it
    is read now; importing it again changes the posts of its ids instead of adding more."""
    await migrate_database(database_url)
    engine = create_engine(database_url)
    try:
        uow = UnitOfWorkFactory(create_session_factory(engine))
        rows = [["id", "when", "audience", "text_da"]] + [
            [f"r{n}", "2030-01-07 10:00", "channel", f"Nyt fra kommunen nr. {n}"]
            for n in range(2000)
        ]
        turns = 0
        importing = True

        async def chats() -> None:
            nonlocal turns
            while importing:
                turns += 1
                await asyncio.sleep(0)

        for text in ("første", "anden"):
            rows[1][3] = f"Nyt fra kommunen, {text} udgave"
            turns = 0
            importing = True
            others = asyncio.create_task(chats())
            await asyncio.sleep(0)
            async with uow() as unit:
                stored, problems = await store_sheet(
                    unit, rows, lambda name: b"", datetime.now(UTC), ZONE, channel_configured=True
                )
                await unit.commit()
            importing = False
            await others
            assert problems == []
            assert len(stored) == 2000
            assert turns >= 10, turns
        async with uow.read() as unit:
            posts = await unit.plan.listing(limit=5000)
        assert len(posts) == 2000
        first = next(post for post in posts if post.key == "sheet:r0")
        assert first.texts["da"] == "Nyt fra kommunen, anden udgave"
    finally:
        await engine.dispose()


def test_results_say_a_tie_as_one_and_rank_statements_only_with_enough_votes() -> None:
    """A three-way tie was told as "most answered Under 25 (33 %)", and "Most agreed on:"
    stood over an empty list when no statement had votes enough to rank (outside trial)."""
    from bot.dialogue.i18n import Catalogs
    from handlers.plan.results import Results, results_text

    results = Results(
        title={"da": "Ny friluftspolitik"},
        participants=3,
        completed=3,
        statements=5,
        votes=6,
        question={"da": "Hvor gammel er du?"},
        bars=[({"da": "Under 25"}, 1), ({"da": "25-64"}, 1), ({"da": "65+"}, 1)],
    )
    text = results_text(results, Catalogs("da").texts("da"), public=False, limit=4096)
    assert "„Hvor gammel er du?“: lige mange svarede Under 25, 25-64 og 65+ (33 % hver)." in text
    assert "flest svarede" not in text
    assert "5 udsagn fik 6 stemmer – for få til at sige, hvad der er mest enighed om." in text
    assert "Mest enighed om" not in text
