"""The small channel-neutral vocabulary between channels and flows."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# What every flow keeps to in one message, whatever channel it goes to: the strictest of the
# channels' limits (each channel's ``ChannelLimits``; a test checks every channel takes these).
# Telegram is the strictest today. A longer reply is a bug in a flow, not something to split.
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_BUTTON_LABEL = 64
MAX_BUTTON_PAYLOAD_BYTES = 64
MAX_IMAGE_BYTES = 10_000_000  # Telegram: "at most 10 MB", counted in decimal


# The longest text a citizen may send in one message, in every channel (Telegram's own cap).
MAX_INBOUND_TEXT = 4096
# Line breaks and tabs are part of what people write; every other control character is not.
_KEPT_CONTROLS = frozenset("\n\t")


class Phrase:
    """A text for people, kept as its catalog key and values until its reader is known.

    Rules that check what staff give (a consultation file, a planned post) name their mistakes
    this way, so the dashboard and the staff chat show them in the reader's language and the
    command line in English. A value may itself be a phrase ("the Danish text" inside "… is
    empty").
    """

    __slots__ = ("key", "values")

    def __init__(self, key: str, /, **values: object) -> None:
        self.key = key
        self.values = values

    def read(self, t: Callable[..., str]) -> str:
        """The text as ``t`` (a language's texts) writes it."""
        values = {
            name: value.read(t) if isinstance(value, Phrase) else value
            for name, value in self.values.items()
        }
        return t(self.key, **values)

    def to_document(self) -> dict[str, Any]:
        """The phrase as a JSON column keeps it (a value that is a phrase as {"phrase": …})."""
        values = {
            name: {"phrase": value.to_document()} if isinstance(value, Phrase) else value
            for name, value in self.values.items()
        }
        return {"key": self.key, "values": values}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Phrase:
        """The phrase ``to_document`` stored."""
        values = {
            name: cls.from_document(value["phrase"])
            if isinstance(value, dict) and set(value) == {"phrase"}
            else value
            for name, value in dict(document.get("values") or {}).items()
        }
        return cls(str(document["key"]), **values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Phrase) and (self.key, self.values) == (other.key, other.values)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Phrase({self.key!r}, {self.values!r})"


class UnreadableText(ValueError):
    """Text that cannot be stored as written: a lone surrogate (broken UTF-16 from a client)."""


def clean_text(text: str) -> str:
    """Return text as it enters the system: NFC, no control characters, no direction
    overrides, CR LF as LF.

    Every channel passes what a person wrote through here before it is stored or shown, so
    U+0000 (refused by PostgreSQL), terminal escapes and other control characters never reach
    the database, an export or a staff terminal, and no text shows in another order than it is
    screened in. Raise UnreadableText for a lone surrogate.
    """
    if any("\ud800" <= char <= "\udfff" for char in text):
        raise UnreadableText("lone surrogate")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(
        char
        for char in text
        if char in _KEPT_CONTROLS
        or (unicodedata.category(char) not in ("Cc", "Cs") and char not in _DIRECTION_OVERRIDES)
    )


# Explicit embeddings, overrides and isolates (U+202A-202E, U+2066-2069): "\u202e.toidi" shows
# as "idiot." to everyone while screening reads the letters backwards, and an override left open
# turns the rest of a staff page around. Mixed Arabic and Danish needs none of them (Unicode's
# own ordering does it); the marks U+200E, U+200F and U+061C stay.
_DIRECTION_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# Letters and symbols that show as blank space although no category says so (the Hangul
# fillers, used as "invisible names"; the blank braille cell).
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def without_invisible(text: str) -> str:
    """Text without what takes no room of its own on screen: format characters (zero-width
    space, joiners, word joiner, direction marks), combining marks (an accent counts with its
    letter; a variation selector or the grapheme joiner alone shows nothing), and letters that
    look blank.

    Stored text keeps them (emoji sequences and Persian words need the joiners); this is for
    judging what was written: 30 zero-width spaces are an empty answer, not a statement.
    """
    return "".join(char for char in text if not is_invisible(char))


def is_invisible(char: str) -> bool:
    """Whether a character takes no room of its own on screen (see ``without_invisible``)."""
    return unicodedata.category(char) in ("Cf", "Mn", "Me") or char in _BLANK_LOOKING


def storable(value: Any) -> Any:
    """Return a JSON value with every string safe to store (raw platform payloads).

    Raw copies keep what the platform sent as far as the database allows: U+0000 is dropped
    (PostgreSQL's JSONB refuses it) and a lone surrogate becomes U+FFFD (it cannot be encoded).
    """
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value):
            return "".join(
                "\ufffd" if "\ud800" <= char <= "\udfff" else char
                for char in value
                if char != "\x00"
            )
        return value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


# Every payload the bot itself makes: namespace and parts, ASCII letters, digits and _ . : -.
_PAYLOAD_SHAPE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Record ids in payloads are database integers: ASCII digits only (str.isdigit() also accepts
# "²" and other digits int() refuses), and no larger than the columns hold.
_RECORD_ID = re.compile(r"[0-9]{1,10}")
MAX_RECORD_ID = 2**31 - 1


def well_formed_payload(payload: str) -> bool:
    """Tell whether a button payload has the shape of one the bot makes (forgeries may not)."""
    return _PAYLOAD_SHAPE.fullmatch(payload) is not None


def record_id(text: str) -> int | None:
    """Read a record id from a payload part or typed number; None unless it can name a row."""
    if _RECORD_ID.fullmatch(text) is None:
        return None
    number = int(text)
    return number if 0 < number <= MAX_RECORD_ID else None


@dataclass(frozen=True)
class Command:
    """A slash command as typed: '/start@bot friluftsliv'."""

    name: str
    argument: str
    # The bot it is addressed to in a group ('bot' in '/start@bot'); '' when not addressed.
    addressee: str


def parse_command(text: str) -> Command | None:
    """Read a slash command from typed text, in any channel; None if the text is no command."""
    if not text.startswith("/") or len(text) < 2:
        return None
    head, _, argument = text.partition(" ")
    name, _, addressee = head[1:].partition("@")
    return Command(name.lower(), argument.strip(), addressee)


@dataclass(frozen=True)
class InboundEvent:
    """Something a participant did: wrote text, sent a command or pressed a button."""

    channel: str
    chat_id: str
    text: str = ""
    command: str | None = None
    argument: str = ""
    button: str | None = None
    # The message that carried the pressed button, so a flow can edit it instead of adding one.
    button_message_ref: str | None = None
    # The channel's handle for acknowledging a button press (Telegram's callback query id).
    button_ack_ref: str | None = None
    language_hint: str | None = None
    is_private_chat: bool = True
    # A photo, sticker, voice message, location, file or poll: content the bot cannot read.
    unsupported_content: bool = False
    # Text that could not be taken in as written (see clean_text); the text is left empty.
    unreadable: bool = False
    # Who acted, when that differs from the chat (a member of a group): id and display name.
    sender_id: str | None = None
    sender_name: str | None = None
    # Whether the channel confirmed the sender belongs to the chat (moderators); None: unchecked.
    sender_verified: bool | None = None

    @property
    def is_command(self) -> bool:
        """Whether this is a slash command."""
        return self.command is not None

    @property
    def is_button(self) -> bool:
        """Whether this is a button press."""
        return self.button is not None


@dataclass(frozen=True)
class Button:
    """An inline button: either a payload that comes back as an event, or a link."""

    label: str
    payload: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.payload is None) == (self.url is None):
            raise ValueError("a button has exactly one of payload and url")
        if self.payload is not None:
            size = len(self.payload.encode("utf-8"))
            if not 1 <= size <= MAX_BUTTON_PAYLOAD_BYTES:
                raise ValueError(f"button payload is {size} bytes; 1-64 allowed")

    def to_dict(self) -> dict[str, str]:
        """Serialise for the outbox."""
        if self.payload is not None:
            return {"label": self.label, "payload": self.payload}
        assert self.url is not None
        return {"label": self.label, "url": self.url}


@dataclass(frozen=True)
class Reply:
    """A message to the participant; with edit_ref it replaces an earlier message in place."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    edit_ref: str | None = None
    # The participant answers by typing (a text question): channels can put focus on input.
    expects_text: bool = False
    # Called with the outbox id once queued, so a flow can find the sent message later.
    on_queued: Callable[[int], Awaitable[None]] | None = field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a reply needs text")
        if len(self.text) > MAX_TEXT_LENGTH:
            raise ValueError(f"reply of {len(self.text)} characters; {MAX_TEXT_LENGTH} allowed")

    def to_payload(self) -> dict[str, Any]:
        """Serialise for the outbox."""
        return {
            "type": "message",
            "text": self.text,
            "buttons": [[button.to_dict() for button in row] for row in self.buttons],
            "edit_ref": self.edit_ref,
            "expects_text": self.expects_text,
        }


# The outbox payload type of a button's acknowledgement: channels answer it their own way, and
# the outbox sends it beside a chat's messages rather than in their order.
ACKNOWLEDGEMENT = "ack"


@dataclass(frozen=True)
class ButtonAck:
    """Acknowledge a button press (Telegram shows a spinner until it is acknowledged)."""

    ack_ref: str
    text: str | None = None
    alert: bool = False

    def to_payload(self) -> dict[str, Any]:
        """Serialise for the outbox."""
        return {
            "type": ACKNOWLEDGEMENT,
            "ack_ref": self.ack_ref,
            "text": self.text,
            "alert": self.alert,
        }


@dataclass(frozen=True)
class Document:
    """A file for the participant, such as their data as JSON."""

    filename: str
    content: bytes
    caption: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """Serialise for the outbox."""
        return {
            "type": "document",
            "filename": self.filename,
            "content": base64.b64encode(self.content).decode("ascii"),
            "caption": self.caption,
        }


Outbound = Reply | ButtonAck | Document


@dataclass(frozen=True)
class ChatAddress:
    """A chat on a channel, for messages to someone other than who caused the event."""

    channel: str
    chat_id: str


@dataclass
class Outcome:
    """What a flow decided: the messages to send, in order."""

    messages: list[Outbound] = field(default_factory=list)
    # Messages to other chats (the moderator chat, a contribution's author), in order.
    elsewhere: list[tuple[ChatAddress, Reply]] = field(default_factory=list)
    # The participant was erased (/forget): the event that did it must not name them either.
    erased: bool = False

    def send_to(self, address: ChatAddress, reply: Reply) -> None:
        """Send a message to another chat."""
        self.elsewhere.append((address, reply))

    def say(
        self,
        text: str,
        buttons: tuple[tuple[Button, ...], ...] = (),
        on_queued: Callable[[int], Awaitable[None]] | None = None,
        expects_text: bool = False,
    ) -> None:
        """Send a new message."""
        self.messages.append(
            Reply(text=text, buttons=buttons, on_queued=on_queued, expects_text=expects_text)
        )

    def send_file(self, filename: str, content: bytes, caption: str | None = None) -> None:
        """Send a file."""
        self.messages.append(Document(filename, content, caption))

    def edit(
        self, message_ref: str, text: str, buttons: tuple[tuple[Button, ...], ...] = ()
    ) -> None:
        """Replace the text and buttons of an earlier message."""
        self.messages.append(Reply(text=text, buttons=buttons, edit_ref=message_ref))

    def ack(self, ack_ref: str | None, text: str | None = None, alert: bool = False) -> None:
        """Acknowledge the button press this event came from, if it did."""
        if ack_ref is not None:
            self.messages.append(ButtonAck(ack_ref=ack_ref, text=text, alert=alert))
