"""The m.me link that opens a consultation in Messenger."""

from __future__ import annotations

from urllib.parse import quote


def messenger_link(page: str, slug: str) -> str:
    """An m.me link: Messenger opens the page's chat and tells the bot the slug as a referral.

    A citizen who opens it starts (or continues) the conversation; the bot opens the
    consultation as /start SLUG does on Telegram.
    """
    return f"https://m.me/{quote(page)}?ref={quote(slug)}"
