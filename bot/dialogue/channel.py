"""The contract every channel keeps with the dialogue core, and its limits as data.

A channel (a package under ``bot/channels/``) turns a platform's events into the core's
vocabulary and delivers the core's messages back. Through the core it:

- stores what arrives with ``DialogueCore.accept`` before it confirms it to the platform (the
  core owns the inbox write);
- applies each stored event with ``DialogueCore.submit``, which keeps a chat's events in order
  (the core owns the per-chat order);
- registers itself with the outbox (``OutboxDelivery.register``) to deliver messages;
- says what its platform accepts and how fast in ``limits``, which the bulk lane paces by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ChannelLimits:
    """What a channel's platform accepts in one message, and how fast it may be sent to."""

    # Characters in one text message, and in the caption under an image.
    max_text: int
    max_caption: int
    # Characters on one button, and bytes in the payload a pressed button sends back.
    max_button_label: int
    max_button_payload_bytes: int
    # The largest image the platform takes.
    max_image_bytes: int
    # Messages a second the bulk lane may send over all chats; None: not paced at all.
    bulk_per_second: float | None = None
    # Messages a second into one private chat, and a minute into one group (or public channel).
    chat_per_second: float | None = None
    group_per_minute: float | None = None
    # How a group's chat id starts (Telegram: "-"); None: the channel has no groups.
    group_chat_prefix: str | None = None
    # Whether the channel has a public channel that posts can go to.
    public_channel: bool = False

    def is_group(self, chat_id: str) -> bool:
        """Whether a chat is a group or a public channel, paced by the group limit."""
        return self.group_chat_prefix is not None and chat_id.startswith(self.group_chat_prefix)

    def seconds_between(self, chat_id: str) -> float:
        """The least time between two bulk messages into this chat (0: no limit)."""
        if self.is_group(chat_id):
            return 60.0 / self.group_per_minute if self.group_per_minute else 0.0
        return 1.0 / self.chat_per_second if self.chat_per_second else 0.0


class Channel(Protocol):
    """What the composition root, the outbox and the bulk lane need of every channel."""

    @property
    def channel(self) -> str:
        """The channel's name, stored with each event, participant and message."""
        ...

    @property
    def limits(self) -> ChannelLimits:
        """What the platform accepts and how fast."""
        ...

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Deliver one outbox payload; return the platform's id of the message, if any.

        Raise ``RetryLater``, ``RecipientGone``, ``Rejected`` or ``TransientFailure``
        (``bot.dialogue.outbox``) for what the platform answered instead.
        """
        ...
