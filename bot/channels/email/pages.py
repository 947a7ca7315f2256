"""The pages e-mail links open: confirm an address (double opt-in), and unsubscribe in one click.

Both say what happened in Danish and English: the page cannot know the reader's language, and
a link opened days later on another device has no cookie to tell.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from bot.channels.email.links import UnsubscribeLinks
from handlers.context import Texts
from handlers.email import CONFIRM_PATH, UNSUBSCRIBE_PATH, token_hash
from storage.uow import UnitOfWorkFactory

logger = logging.getLogger(__name__)

# Tokens are 43 URL-safe characters; anything much longer is not one of ours.
MAX_TOKEN = 100


class EmailPages:
    """Serve the confirmation and unsubscribe pages."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        texts_in: Callable[[str | None], Texts],
        links: UnsubscribeLinks,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._texts_in = texts_in
        self._links = links
        self._clock = clock

    def add_routes(self, app: web.Application) -> None:
        """Register the pages on the bot's web server."""
        app.router.add_get(CONFIRM_PATH, self.confirm)
        app.router.add_get(UNSUBSCRIBE_PATH, self.unsubscribe)
        # RFC 8058 one-click: mail programs POST to the List-Unsubscribe link.
        app.router.add_post(UNSUBSCRIBE_PATH, self.unsubscribe)

    async def confirm(self, request: web.Request) -> web.Response:
        """Confirm the address a link's token belongs to; the link works once, for 48 hours."""
        token = request.query.get("token", "")
        confirmed = False
        if 0 < len(token) <= MAX_TOKEN:
            async with self._uow() as unit:
                confirmed = await unit.email.confirm(token_hash(token), self._clock())
                await unit.commit()
        if confirmed:
            logger.info("an e-mail address was confirmed")
            return self._page("email.page.confirmed_title", "email.page.confirmed")
        return self._page("email.page.invalid_title", "email.page.invalid", status=404)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        """Erase the address an unsubscribe link names, and what is queued for it."""
        token = request.query.get("token", "")
        address_id = self._links.address_id(token) if len(token) <= MAX_TOKEN else None
        if address_id is None:
            return self._page("email.page.invalid_title", "email.page.invalid", status=404)
        async with self._uow() as unit:
            erased = await unit.email.erase(address_id)
            await unit.commit()
        if erased:
            logger.info("an e-mail address was unsubscribed and erased")
        # Clicking twice is no mistake: the address is gone either way.
        return self._page("email.page.unsubscribed_title", "email.page.unsubscribed")

    def _page(self, title: str, body: str, status: int = 200) -> web.Response:
        sections = []
        for language in ("da", "en"):
            t = self._texts_in(language)
            sections.append(
                f'<section lang="{language}"><h1>{html.escape(t(title))}</h1>'
                f"<p>{html.escape(t(body))}</p></section>"
            )
        page = (
            '<!doctype html><html lang="da"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self._texts_in('da')(title))}</title></head>"
            f"<body>{'<hr>'.join(sections)}</body></html>"
        )
        return web.Response(text=page, content_type="text/html", status=status)
