"""Every channel keeps the contract: it takes what the flows write, and declares how fast.

The flows write for the strictest channel (``handlers.events``); each channel declares its own
limits (``bot.dialogue.channel.ChannelLimits``), and the bulk lane paces by those, not by a
channel's name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.channels.email.sender import EmailChannel
from bot.channels.messenger.channel import MessengerChannel
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.webchat.channel import WebChatChannel
from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.channels.whatsapp.shaping import (
    MAX_BUTTON_TITLE,
    MAX_INTERACTIVE_BODY,
    MAX_LIST_ROWS,
    MAX_ROW_DESCRIPTION,
    MAX_ROW_TITLE,
    shape_message,
)
from bot.config import Settings, load_settings
from bot.dialogue.channel import ChannelLimits
from handlers.events import (
    MAX_BUTTON_LABEL,
    MAX_BUTTON_PAYLOAD_BYTES,
    MAX_CAPTION_LENGTH,
    MAX_IMAGE_BYTES,
    MAX_TEXT_LENGTH,
)
from scheduler.broadcast import BulkSender
from storage.models import OutboxMessage


def telegram_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        "data_dir": tmp_path,
        "telegram_token": "123456:contract-test",
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


async def telegram_limits(settings: Settings) -> ChannelLimits:
    # Building the channel connects to nothing; only start() does.
    return TelegramChannel(settings, core=None, catalogs=None).limits  # type: ignore[arg-type]


async def every_channels_limits(tmp_path: Path) -> dict[str, ChannelLimits]:
    return {
        "telegram": await telegram_limits(telegram_settings(tmp_path)),
        "web": WebChatChannel.limits,
        "email": EmailChannel.limits,
        "whatsapp": WhatsAppChannel.limits,
        "messenger": MessengerChannel.limits,
    }


# Limits a channel is stricter in than the flows write, and adapts to itself instead of every
# flow writing for it: WhatsApp cuts a button's title to 20 characters and writes the choice in
# full into the text (test below), and sends a post's image over its 5 MB as text alone.
# Messenger cuts titles the same way, and splits a text over its 2000 characters at paragraph
# breaks (tests/test_messenger.py checks both).
ADAPTED = {
    "whatsapp": {"max_button_label", "max_image_bytes"},
    "messenger": {"max_button_label", "max_text"},
}


async def test_every_channel_takes_what_the_flows_write(tmp_path: Path) -> None:
    for name, limits in (await every_channels_limits(tmp_path)).items():
        adapted = ADAPTED.get(name, set())
        if "max_text" not in adapted:
            assert limits.max_text >= MAX_TEXT_LENGTH, name
        assert limits.max_caption >= MAX_CAPTION_LENGTH, name
        if "max_button_label" not in adapted:
            assert limits.max_button_label >= MAX_BUTTON_LABEL, name
        assert limits.max_button_payload_bytes >= MAX_BUTTON_PAYLOAD_BYTES, name
        if "max_image_bytes" not in adapted:
            assert limits.max_image_bytes >= MAX_IMAGE_BYTES, name


async def test_the_flows_write_for_the_strictest_channel(tmp_path: Path) -> None:
    # A limit looser than every channel's would let a flow write what some channel refuses.
    every = (await every_channels_limits(tmp_path)).items()
    kept = [limits for name, limits in every if name not in ADAPTED]
    whole = [limits for name, limits in every if "max_text" not in ADAPTED.get(name, set())]
    assert min(limits.max_text for limits in whole) == MAX_TEXT_LENGTH
    assert min(limits.max_caption for _, limits in every) == MAX_CAPTION_LENGTH
    assert min(limits.max_button_payload_bytes for _, limits in every) == MAX_BUTTON_PAYLOAD_BYTES
    assert min(limits.max_image_bytes for limits in kept) == MAX_IMAGE_BYTES
    assert min(limits.max_button_label for limits in kept) == MAX_BUTTON_LABEL


def test_whatsapp_keeps_every_choice_the_flows_write_within_its_limits() -> None:
    """The longest labels the flows write, 2 to 14 of them with the longest text: each message
    is within WhatsApp's limits, every choice can be tapped, and no label is lost."""
    text = "Spørgsmål " * (MAX_TEXT_LENGTH // 10)
    for count in (2, 3, 4, 10, 14):
        labels = [f"{n:02d} " + "Valgmulighed med en meget lang tekst " * 3 for n in range(count)]
        labels = [label[:MAX_BUTTON_LABEL] for label in labels]
        rows = [[{"label": label, "payload": f"q:1:2:{n}"}] for n, label in enumerate(labels)]
        messages = shape_message(text[:MAX_TEXT_LENGTH], rows, choose="Vælg her")
        ids: list[str] = []
        shown = ""
        for message in messages:
            if message["type"] == "text":
                assert len(message["text"]["body"]) <= WhatsAppChannel.limits.max_text
                shown += message["text"]["body"]
                continue
            interactive = message["interactive"]
            assert len(interactive["body"]["text"]) <= MAX_INTERACTIVE_BODY
            shown += interactive["body"]["text"]
            if interactive["type"] == "button":
                buttons = interactive["action"]["buttons"]
                assert len(buttons) <= 3
                assert all(len(b["reply"]["title"]) <= MAX_BUTTON_TITLE for b in buttons)
                ids += [b["reply"]["id"] for b in buttons]
            else:
                rows_shown = interactive["action"]["sections"][0]["rows"]
                assert len(rows_shown) <= MAX_LIST_ROWS
                for row in rows_shown:
                    assert len(row["title"]) <= MAX_ROW_TITLE
                    assert len(row.get("description", "")) <= MAX_ROW_DESCRIPTION
                    shown += row.get("description", "")
                ids += [row["id"] for row in rows_shown]
        assert ids == [f"q:1:2:{n}" for n in range(count)], count
        for label in labels:
            assert label in shown or label[: MAX_ROW_DESCRIPTION - 1] in shown, (count, label)


async def test_telegram_pacing_comes_from_its_published_limits_and_the_settings(
    tmp_path: Path,
) -> None:
    default = await telegram_limits(telegram_settings(tmp_path))
    assert (default.bulk_per_second, default.chat_per_second, default.group_per_minute) == (
        29.0,
        1,
        20,
    )
    assert default.is_group("-1001234")
    assert not default.is_group("1234")
    assert not default.public_channel
    paid = await telegram_limits(
        telegram_settings(
            tmp_path,
            paid_broadcast=True,
            bulk_messages_per_second=500,
            group_messages_per_minute=10,
            public_channel_id=-100555,
        )
    )
    assert (paid.bulk_per_second, paid.group_per_minute, paid.public_channel) == (500, 10, True)


class PacedChannel:
    """A channel that only declares limits: the bulk lane's pacing is read from them."""

    def __init__(self, name: str, limits: ChannelLimits) -> None:
        self.channel = name
        self.limits = limits

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        return None


def bulk_message(channel: str, chat_id: str) -> OutboxMessage:
    return OutboxMessage(channel=channel, chat_id=chat_id, payload={"type": "message"})


async def _no_posts(posts: set[int]) -> None:
    return None


def test_the_bulk_lane_paces_each_channel_by_its_own_limits() -> None:
    base = {
        "max_text": 4096,
        "max_caption": 1024,
        "max_button_label": 64,
        "max_button_payload_bytes": 64,
        "max_image_bytes": 10_000_000,
    }
    slow = PacedChannel(
        "slow",
        ChannelLimits(
            **base,
            bulk_per_second=2.0,
            chat_per_second=0.5,
            group_per_minute=6,
            group_chat_prefix="g",
        ),
    )
    free = PacedChannel("free", ChannelLimits(**base))
    channels = {"slow": slow, "free": free}
    lane = BulkSender(
        uow=None,  # type: ignore[arg-type]  # pacing touches no database
        clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
        sender=channels.get,
        channels=lambda: list(channels),
        lease=timedelta(seconds=30),
        on_settled=_no_posts,
    )
    waits = [
        lane._wait_for_slot(channel, bulk_message(channel.channel, chat))
        for channel, chat in [
            (slow, "a"),  # the first slot
            (slow, "b"),  # half a second later: 2 a second over all chats
            (slow, "a"),  # chat "a" again: 2 s after its first (0.5 a second per chat)
            (slow, "g1"),  # a group: the next bulk slot
            (slow, "g1"),  # the same group: 10 s after (6 a minute)
            (free, "a"),  # an unpaced channel never waits, whatever the other does
            (free, "a"),
        ]
    ]
    assert [round(wait, 1) for wait in waits] == [0.0, 0.5, 2.0, 1.5, 11.5, 0.0, 0.0]
