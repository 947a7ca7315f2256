"""The links that open a consultation in each channel, and their QR codes.

One place for them: ``borgerdialog consultation link`` prints and writes them, the dashboard
shows and serves them, and the content plan puts them in posts (``BorgerDialog.consultation_link``).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from bot.channels.messenger.links import messenger_link
from bot.channels.whatsapp.links import whatsapp_link
from bot.config import Settings

if TYPE_CHECKING:
    from segno import QRCode

# A poster's QR code: at least this many pixels wide as PNG (an SVG scales to any size).
QR_POSTER_PIXELS = 1000
# Four modules of white around the code, as the QR standard asks for readers to find it.
QR_BORDER = 4


def channel_links(settings: Settings, slug: str, telegram_username: str | None) -> dict[str, str]:
    """The link of every channel that has one, by channel: the web chat always; Telegram with
    the bot's username; WhatsApp and Messenger when configured with a number or page."""
    links = {"web": f"{settings.public_base_url}/chat?c={slug}"}
    if telegram_username:
        links["telegram"] = f"https://t.me/{telegram_username.lstrip('@')}?start={slug}"
    if settings.whatsapp_enabled and settings.whatsapp_number:
        links["whatsapp"] = whatsapp_link(settings.whatsapp_number, slug)
    if settings.messenger_enabled and settings.messenger_page_id:
        links["messenger"] = messenger_link(settings.messenger_page_id, slug)
    return links


def reachable_only_here(settings: Settings) -> bool:
    """Whether the web chat's link is the bot's own listening address: without
    BORGERDIALOG_PUBLIC_URL it names this machine (127.0.0.1), which no citizen's phone opens,
    so a poster of it must not be printed."""
    return not settings.public_url


def qr_code(link: str) -> QRCode:
    """A link's QR code, with medium error correction (a poster may get a scratch)."""
    import segno

    return segno.make(link, error="m")


def poster_scale(code: QRCode) -> int:
    """The pixels per module that make the code at least poster-wide."""
    width, _ = code.symbol_size(scale=1, border=QR_BORDER)
    return -(-QR_POSTER_PIXELS // int(width))


def qr_svg(link: str) -> bytes:
    """A link's QR code as a poster-size SVG document."""
    code = qr_code(link)
    buffer = io.BytesIO()
    code.save(buffer, kind="svg", scale=poster_scale(code), border=QR_BORDER)
    return buffer.getvalue()
