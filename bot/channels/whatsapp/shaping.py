"""Shape an outbox message into what WhatsApp takes: text, reply buttons or a list, within limits.

The flows write for Telegram-sized buttons (``handlers.events.MAX_BUTTON_LABEL``, 64 characters);
WhatsApp takes far less on a button. Rather than every flow writing for the strictest platform,
this channel cuts a title to WhatsApp's limit and writes each cut choice in full into the
message's text, so nothing a citizen chooses between is lost:

- up to 3 choices: reply buttons (title ≤ 20 characters);
- 4 to 10: one list message (row title ≤ 24, the full text as the row's description ≤ 72);
- more: list messages of 10 rows each, the text on the first.

Link buttons (a post's "read more") become a line with the link under the text. A message's
text on an interactive message is at most 1024 characters; a longer text goes ahead as plain
messages (≤ 4096 each) and its last paragraphs ride with the choices.

Limits: developers.facebook.com/documentation/business-messaging/whatsapp/messages/
interactive-reply-buttons-messages and .../interactive-list-messages.
"""

from __future__ import annotations

from typing import Any

from bot.channels.meta import text as meta_text
from bot.channels.meta.text import ELLIPSIS, cut, full_labels, text_for_choices

__all__ = ["ELLIPSIS", "cut", "shape_message", "split_text", "template_message"]

MAX_TEXT = 4096
MAX_INTERACTIVE_BODY = 1024
MAX_CAPTION = 1024
MAX_REPLY_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_LIST_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_LIST_BUTTON = 20
# A template's body parameter: one line (Meta refuses line breaks and tabs in parameters).
MAX_TEMPLATE_PARAMETER = 1024


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split text into WhatsApp messages, at paragraph or line breaks."""
    return meta_text.split_text(text, limit)


def _text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body, "preview_url": "https://" in body}}


def shape_message(
    text: str, rows: list[list[dict[str, str]]], *, choose: str, more: str = ""
) -> list[dict[str, Any]]:
    """The WhatsApp messages (without recipient) for one outbox message, in sending order.

    ``choose`` is the list's button ("Choose"), in the citizen's language.
    """
    choices = [b for row in rows for b in row if b.get("payload")]
    links = [b for row in rows for b in row if b.get("url")]
    if links:
        text += "\n\n" + "\n".join(f"{b['label']}: {b['url']}" for b in links)
    if not choices:
        return [_text(piece) for piece in split_text(text)]
    as_buttons = len(choices) <= MAX_REPLY_BUTTONS
    limit = MAX_BUTTON_TITLE if as_buttons else MAX_ROW_TITLE
    note = full_labels([b["label"] for b in choices], limit)
    pages = [choices[at : at + MAX_LIST_ROWS] for at in range(0, len(choices), MAX_LIST_ROWS)]
    # The cut choices in full: with the first page's text, or alone when that is too long.
    messages: list[dict[str, Any]] = []
    head, body = text_for_choices(text, note, MAX_INTERACTIVE_BODY, MAX_TEXT)
    messages += [_text(piece) for piece in head]
    for number, page in enumerate(pages):
        page_body = body if number == 0 else f"{more or ELLIPSIS} ({number + 1}/{len(pages)})"
        if as_buttons:
            action: dict[str, Any] = {
                "buttons": [
                    {
                        "type": "reply",
                        "reply": {
                            "id": b["payload"][:MAX_BUTTON_ID],
                            "title": cut(b["label"], MAX_BUTTON_TITLE),
                        },
                    }
                    for b in page
                ]
            }
            kind = "button"
        else:
            action = {
                "button": cut(choose, MAX_LIST_BUTTON),
                "sections": [{"rows": [_row(b) for b in page]}],
            }
            kind = "list"
        messages.append(
            {
                "type": "interactive",
                "interactive": {"type": kind, "body": {"text": page_body}, "action": action},
            }
        )
    return messages


def _row(button: dict[str, str]) -> dict[str, str]:
    label = " ".join(button["label"].split())
    row = {"id": button["payload"][:MAX_BUTTON_ID], "title": cut(label, MAX_ROW_TITLE)}
    if len(label) > MAX_ROW_TITLE:
        row["description"] = cut(label, MAX_ROW_DESCRIPTION)
    return row


def template_message(name: str, language: str, text: str) -> dict[str, Any]:
    """An approved template with the post's text as its one body parameter, on one line."""
    line = " · ".join(part for part in (" ".join(p.split()) for p in text.split("\n")) if part)
    return {
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": language},
            "components": [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": cut(line, MAX_TEMPLATE_PARAMETER)}],
                }
            ],
        },
    }
