"""Links that open a chat with the business number, with the consultation's slug typed in."""

from __future__ import annotations

from urllib.parse import quote


def whatsapp_link(number: str, slug: str) -> str:
    """A wa.me link: WhatsApp opens the chat with the slug as the first message, ready to send.

    The citizen sends it themselves (a business cannot write first), and the slug alone opens
    the consultation as /start SLUG does on Telegram.
    """
    return f"https://wa.me/{number}?text={quote(slug)}"
