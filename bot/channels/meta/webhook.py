"""Meta's webhook over HTTP: the verification handshake, signed deliveries, capped bodies.

Meta first checks the address with a GET (``hub.mode=subscribe``, ``hub.verify_token``,
``hub.challenge``: answer the challenge if the token is ours). Then every delivery is a POST
signed with the app secret (``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``),
and Meta delivers it again, for up to days, until it gets a 200. So: a missing or wrong
signature is 401 and nothing is stored; the answer is 200 only once what the delivery holds is
stored in the inbox; anything that stored nothing answers so that Meta delivers it again.
WhatsApp and Messenger follow the same rules (developers.facebook.com/docs/graph-api/webhooks/
getting-started).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.channels.webhooks import read_capped

SIGNATURE_HEADER = "X-Hub-Signature-256"
# A delivery batches up to about a thousand changes (messages and statuses). A text message is
# at most 4096 characters, so even a full batch of them stays well under this; a forger without
# the app secret is refused before the body is read at all.
MAX_BODY_BYTES = 3 * 1024 * 1024
# The challenge is a number Meta makes up; anything longer is not from Meta.
MAX_CHALLENGE = 200

logger = logging.getLogger(__name__)


def signature(app_secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with a body."""
    return "sha256=" + hmac.new(app_secret, body, hashlib.sha256).hexdigest()


class SignedWebhook:
    """Serve ``GET`` and ``POST`` at one path for a channel that takes in a signed body."""

    def __init__(
        self,
        path: str,
        platform: str,
        app_secret: str,
        verify_token: str,
        take_in: Callable[[bytes], Awaitable[bool]],
        ready: Callable[[], bool],
    ) -> None:
        self.path = path
        # The platform's name in log lines ("WhatsApp", "Messenger").
        self._platform = platform
        self._app_secret = app_secret.encode()
        self._verify_token = verify_token.encode()
        # True once the delivery is stored (or set aside); False if nothing could be stored.
        self._take_in = take_in
        # Whether the channel takes deliveries now (not before a crash's leftovers are queued).
        self._ready = ready

    def add_routes(self, app: web.Application) -> None:
        """Add the webhook's routes to the web application."""
        app.router.add_get(self.path, self.verify)
        app.router.add_post(self.path, self.handle)

    async def verify(self, request: web.Request) -> web.Response:
        """Meta's subscription check: echo the challenge to the right verify token only."""
        mode = request.query.get("hub.mode", "")
        given = request.query.get("hub.verify_token", "").encode()
        challenge = request.query.get("hub.challenge", "")
        # Constant time: how long the comparison takes tells a guesser nothing.
        if (
            mode != "subscribe"
            or not hmac.compare_digest(given, self._verify_token)
            or not challenge
            or len(challenge) > MAX_CHALLENGE
        ):
            logger.warning(
                "a %s webhook verification without the right token was refused", self._platform
            )
            return web.Response(status=403)
        return web.Response(text=challenge, content_type="text/plain")

    async def handle(self, request: web.Request) -> web.Response:
        """Check the signature of the capped body, and answer 200 only once it is stored."""
        platform = self._platform
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not given.startswith("sha256="):
            logger.warning("an unsigned %s webhook delivery was refused", platform)
            return web.Response(status=401)
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            logger.error(
                "a %s webhook delivery over %d bytes was refused", platform, MAX_BODY_BYTES
            )
            return web.Response(status=413)
        if not hmac.compare_digest(given.encode(), signature(self._app_secret, body).encode()):
            logger.warning("a %s webhook delivery with a wrong signature was refused", platform)
            return web.Response(status=401)
        if not self._ready():
            return web.Response(status=503)
        try:
            stored = await self._take_in(body)
        except Exception as error:
            # The type only: the message may quote the delivery. Meta delivers it again.
            logger.error("taking in a %s delivery failed: %s", platform, type(error).__name__)
            return web.Response(status=503)
        return web.Response(status=200 if stored else 503)
