"""Text as Meta's channels take it: cut titles, split long texts, typed words read as commands.

Both platforms take shorter buttons and texts than the flows write (``handlers.events``), and
neither can edit a sent message; the helpers here are what WhatsApp and Messenger do alike about
that.
"""

from __future__ import annotations

from collections import OrderedDict

from handlers.events import (
    MAX_INBOUND_TEXT,
    InboundEvent,
    UnreadableText,
    clean_text,
    parse_command,
)
from handlers.typed_commands import read_typed_command

ELLIPSIS = "…"
# Messages whose text is remembered for edits (see SentTexts).
REMEMBERED_MESSAGES = 20_000


def cut(text: str, limit: int) -> str:
    """The text, cut to ``limit`` characters with an ellipsis if it is longer."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def split_text(text: str, limit: int) -> list[str]:
    """Split text into pieces of at most ``limit`` characters, at paragraph or line breaks."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        at = max(window.rfind("\n\n"), window.rfind("\n"))
        if at <= 0:
            at = window.rfind(" ")
        if at <= 0:
            at = limit
        pieces.append(rest[:at].rstrip())
        rest = rest[at:].lstrip()
    if rest.strip():
        pieces.append(rest)
    return pieces


def head_and_body(text: str, limit: int, piece: int) -> tuple[list[str], str]:
    """Plain messages (≤ ``piece`` each) to go first, and the last paragraphs (≤ ``limit``) to
    go with the choices."""
    if len(text) <= limit:
        return [], text
    paragraphs = text.split("\n\n")
    tail: list[str] = []
    while paragraphs and len("\n\n".join([paragraphs[-1], *tail])) <= limit:
        tail.insert(0, paragraphs.pop())
    if not tail:
        # One paragraph longer than the choices' text: its end rides with the choices.
        last = paragraphs.pop()
        pieces = split_text(last, limit)
        paragraphs.append("\n".join(pieces[:-1]))
        tail = [pieces[-1]]
    head = "\n\n".join(paragraphs)
    return split_text(head, piece), "\n\n".join(tail)


def full_labels(labels: list[str], limit: int) -> str:
    """The labels a button cuts, in full, one a line, to write under the message's text."""
    return "\n".join(f"▸ {label}" for label in labels if len(" ".join(label.split())) > limit)


def text_for_choices(text: str, note: str, limit: int, piece: int) -> tuple[list[str], str]:
    """Plain messages (≤ ``piece``) to go first, and the text (≤ ``limit``) to carry the choices.

    ``note`` (the cut choices in full) goes with the choices' text, or alone as that text when
    the text's last paragraphs and it do not fit together.
    """
    full = f"{text}\n\n{note}" if note else text
    head, body = head_and_body(full, limit, piece)
    if note and note not in body:
        head, body = head_and_body(text, limit, piece)
        head = [*head, *split_text(body, piece)]
        body = note if len(note) <= limit else cut(note, limit)
    return head, body


def paragraphs(text: str) -> list[str]:
    """The text's paragraphs, stripped."""
    return [p.strip() for p in text.split("\n\n") if p.strip()]


class SentTexts:
    """The paragraphs of messages sent lately, by the platform's message id.

    Neither platform can change a sent message. The flows "close" a message by editing it into
    its text and what became of it (a question and "✅ 5"); an edit without buttons then sends
    only what is new ("✅ 5"). Kept in memory: lost on restart, which costs only a longer message.
    """

    def __init__(self, size: int = REMEMBERED_MESSAGES) -> None:
        self._size = size
        self._sent: OrderedDict[str, frozenset[str]] = OrderedDict()

    def remember(self, message_id: str, text: str) -> None:
        """Note what a sent message said."""
        self._sent[message_id] = frozenset(paragraphs(text))
        while len(self._sent) > self._size:
            self._sent.popitem(last=False)

    def only_new(self, message_id: str, text: str) -> str:
        """Of an edit's text, the paragraphs the edited message did not already show."""
        shown = self._sent.get(message_id)
        if shown is None:
            return text
        return "\n\n".join(p for p in paragraphs(text) if p not in shown)


def typed_event(channel: str, chat_id: str, text: str) -> InboundEvent:
    """What a citizen typed, cleaned, with a whole message naming a command read as that."""
    try:
        text = clean_text(text).strip()[:MAX_INBOUND_TEXT]
    except UnreadableText:
        return InboundEvent(channel=channel, chat_id=chat_id, unreadable=True)
    typed = read_typed_command(text)
    command = parse_command(text)
    name, argument = typed if typed else (command.name, command.argument) if command else (None, "")
    return InboundEvent(
        channel=channel, chat_id=chat_id, text=text, command=name, argument=argument
    )
