"""Shape an outbox message into what Messenger takes: text, a button template or quick replies.

Messenger's limits (developers.facebook.com/docs/messenger-platform/reference/send-api, .../send-
messages/quick-replies, .../send-messages/template/button):

- a text message: 2000 characters; a longer one is split at paragraph or line breaks;
- a button template: text ≤ 640 characters and 1 to 3 buttons (title ≤ 20, payload ≤ 1000);
- quick replies: up to 13 on a text message (title ≤ 20, payload ≤ 1000). They vanish once one
  is tapped or another message arrives, and stand out above the keyboard.

Which to send: up to 3 choices go as a button template, whose buttons stay in the conversation
(a vote card, consent, yes/no); 4 to 13 as quick replies, which are made for choosing one
answer (a scale, a district); more than 13 as button templates of 3 choices each, since only
the last message's quick replies can be seen. As on WhatsApp, a title longer than 20 characters
is cut, and the choice is written in full into the message's text, so nothing a citizen chooses
between is lost. Link buttons (a post's "read more") become a line with the link.
"""

from __future__ import annotations

from typing import Any

from bot.channels.meta.text import ELLIPSIS, cut, full_labels, split_text, text_for_choices

MAX_TEXT = 2000
MAX_BUTTON_TEXT = 640
MAX_BUTTONS = 3
MAX_QUICK_REPLIES = 13
MAX_TITLE = 20
MAX_PAYLOAD = 1000


def shape_message(text: str, rows: list[list[dict[str, str]]]) -> list[dict[str, Any]]:
    """The Messenger message objects for one outbox message, in sending order."""
    choices = [b for row in rows for b in row if b.get("payload")]
    links = [b for row in rows for b in row if b.get("url")]
    if links:
        text += "\n\n" + "\n".join(f"{b['label']}: {b['url']}" for b in links)
    if not choices:
        return [{"text": piece} for piece in split_text(text, MAX_TEXT)]
    quick = MAX_BUTTONS < len(choices) <= MAX_QUICK_REPLIES
    if quick:
        note = full_labels([b["label"] for b in choices], MAX_TITLE)
        head, body = text_for_choices(text, note, MAX_TEXT, MAX_TEXT)
        replies = [
            {"content_type": "text", "title": _title(b), "payload": b["payload"][:MAX_PAYLOAD]}
            for b in choices
        ]
        return [{"text": piece} for piece in head] + [{"text": body, "quick_replies": replies}]
    # Button templates of 3: each says in full what its own cut buttons say.
    pages = [choices[at : at + MAX_BUTTONS] for at in range(0, len(choices), MAX_BUTTONS)]
    notes = [full_labels([b["label"] for b in page], MAX_TITLE) for page in pages]
    head, body = text_for_choices(text, notes[0], MAX_BUTTON_TEXT, MAX_TEXT)
    messages: list[dict[str, Any]] = [{"text": piece} for piece in head]
    for number, page in enumerate(pages):
        page_text = body if number == 0 else notes[number] or f"{ELLIPSIS} ({number + 1})"
        buttons = [
            {"type": "postback", "title": _title(b), "payload": b["payload"][:MAX_PAYLOAD]}
            for b in page
        ]
        messages.append(
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "button", "text": page_text, "buttons": buttons},
                }
            }
        )
    return messages


def _title(button: dict[str, str]) -> str:
    return cut(button["label"], MAX_TITLE) or ELLIPSIS


def text_of(message: dict[str, Any]) -> str:
    """What a shaped message says (the button template's text, or the text)."""
    attachment = message.get("attachment")
    if isinstance(attachment, dict):
        return str(attachment["payload"].get("text") or "")
    return str(message.get("text") or "")


def payloads_of(message: dict[str, Any]) -> list[str]:
    """The payloads a shaped message's buttons or quick replies send back."""
    attachment = message.get("attachment")
    if isinstance(attachment, dict):
        return [b["payload"] for b in attachment["payload"].get("buttons") or [] if "payload" in b]
    return [q["payload"] for q in message.get("quick_replies") or []]
