"""Telegram's webhook deliveries over HTTP: who may deliver, how much, and what to answer.

Telegram delivers one update per POST and sends it again until it gets a 2xx answer, holding the
same chat's later updates back meanwhile. So the answer is 200 only once the update is stored
(and queued behind its chat's earlier ones); anything that stored nothing answers so that
Telegram delivers it again.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.channels.webhooks import read_capped

PATH = "/telegram/webhook"
# The header Telegram sends the secret_token in (the name, not a secret).
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105
# An update is one message (at most 4096 characters of text and its entities), perhaps with the
# message it replies to or, for a button press, the message and its keyboard: tens of
# kilobytes even when every character is escaped. Four times the most one could plausibly
# hold, so no real update is ever refused, while a forger with the secret cannot make the bot
# read megabytes.
MAX_BODY_BYTES = 256 * 1024

logger = logging.getLogger(__name__)


class WebhookEndpoint:
    """Serve ``POST /telegram/webhook`` for a channel that takes in a delivery's body."""

    def __init__(
        self,
        secret: str,
        take_in: Callable[[bytes], Awaitable[bool]],
        ready: Callable[[], bool],
    ) -> None:
        self._secret = secret.encode()
        # True once the delivery is stored (or set aside); False if nothing could be stored.
        self._take_in = take_in
        # Whether the channel takes deliveries now: not before what a crash left pending is
        # queued (a new update must not overtake its chat's older one), not while stopping.
        self._ready = ready

    def add_route(self, app: web.Application) -> None:
        """Add the webhook's route to the web application."""
        app.router.add_post(PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        """Check the secret, read the capped body, and answer 200 only once it is stored."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        # Constant time: how long the comparison takes tells a forger nothing about the secret.
        if not hmac.compare_digest(given, self._secret):
            logger.warning("a webhook delivery without the right secret was refused")
            return web.Response(status=401)
        if not self._ready():
            return web.Response(status=503)
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            logger.error("a webhook delivery over %d bytes was refused", MAX_BODY_BYTES)
            return web.Response(status=413)
        try:
            stored = await self._take_in(body)
        except Exception as error:
            # The type only: the message may quote the update. Telegram delivers it again.
            logger.error("taking in a webhook delivery failed: %s", type(error).__name__)
            return web.Response(status=503)
        return web.Response(status=200 if stored else 503)
