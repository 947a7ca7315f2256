"""GET /metrics: what Prometheus reads – updates, reply latency, 429s, 403s, the backlog."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.app import BorgerDialog
from tests.citizens import Citizen, import_consultation, open_now
from tests.conftest import eventually
from tests.fake_telegram import FakeBot
from tests.moderators import consultation_source, join


async def scrape(app: BorgerDialog) -> tuple[str, dict[tuple[str, frozenset], float]]:
    """The page as text, and every sample by name and labels."""
    url = f"http://127.0.0.1:{app.settings.http_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_updates_replies_flood_waits_and_blocked_recipients(
    telegram_app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(telegram_app, open_now())
    anna = Citizen(fake_bot, 7301)
    _, before = await scrape(telegram_app)
    assert (
        value(before, "borgerdialog_updates_handled_total", channel="telegram", outcome="applied")
        == 0
    )

    await anna.write("/start friluftsliv", new=2)

    async def reply_timed() -> dict[tuple[str, frozenset], float] | None:
        # The latency is observed once the send's answer is back: just after the fake has the
        # reply, and so possibly after the citizen sees it.
        _, samples = await scrape(telegram_app)
        timed = value(samples, "borgerdialog_update_reply_seconds_count", channel="telegram")
        return samples if timed else None

    after = await eventually(reply_timed, what="the reply's latency observed")
    handled = "borgerdialog_updates_handled_total"
    assert value(after, handled, channel="telegram", outcome="applied") == 1
    assert value(after, "borgerdialog_update_reply_seconds_count", channel="telegram") == 1
    assert value(after, "borgerdialog_update_reply_seconds_sum", channel="telegram") > 0
    assert value(after, "borgerdialog_outbox_pending", lane="reply") == 0
    assert ("borgerdialog_outbox_pending", frozenset({("lane", "bulk")})) in after

    # Telegram's flood control once: the reply waits and goes; the wait is counted.
    fake_bot.inject(429, "Too Many Requests: retry after 1", method="sendMessage", retry_after=1)
    await anna.write("/hjaelp")
    _, flooded = await scrape(telegram_app)
    assert value(flooded, "borgerdialog_flood_waits_total", channel="telegram", lane="reply") == 1

    # A citizen who blocked the bot: the reply is refused for good, and counted.
    bo = Citizen(fake_bot, 7302)
    fake_bot.block(bo.id)
    fake_bot.send_message(bo.id, "/hjaelp", language_code="da")

    async def counted() -> bool:
        _, samples = await scrape(telegram_app)
        gone = "borgerdialog_recipients_gone_total"
        return value(samples, gone, channel="telegram", lane="reply") == 1

    await eventually(counted, what="the blocked recipient counted")


async def test_metrics_name_no_one(telegram_app: BorgerDialog, fake_bot: FakeBot) -> None:
    await import_consultation(telegram_app, open_now())
    anna = Citizen(fake_bot, 7303)
    await anna.write("/start friluftsliv", new=2)
    text, _ = await scrape(telegram_app)
    assert "7303" not in text
    assert "friluftsliv" not in text


async def test_metrics_count_what_screening_did(app: BorgerDialog, fake_bot: FakeBot) -> None:
    await import_consultation(app, consultation_source())
    citizen = await join(fake_bot, 7311)
    # A phone number is personal data: the idea waits for a moderator.
    await citizen.write("Ring til mig på 20 30 40 50 om stien")
    _, samples = await scrape(app)
    assert value(samples, "borgerdialog_screening_actions_total", action="hold") == 1
    assert value(samples, "borgerdialog_screening_flags_total", category="personal_data") == 1
    assert value(samples, "borgerdialog_screening_actions_total", action="allow") == 0

    await citizen.write("En bred cykelsti langs åen")
    _, samples = await scrape(app)
    assert value(samples, "borgerdialog_screening_actions_total", action="allow") == 1
    assert value(samples, "borgerdialog_screening_actions_total", action="hold") == 1
