"""The aiohttp web server: health, the web chat and the Telegram webhook (dashboard later)."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.dialogue.i18n import BoundTexts

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
HEALTH_KEY: web.AppKey[HealthCheck] = web.AppKey("health")


async def healthz(request: web.Request) -> web.Response:
    """Report database reachability and each channel's state; 200 when all is well, else 503."""
    healthy, report = await request.app[HEALTH_KEY]()
    return web.json_response(report, status=200 if healthy else 503)


async def no_content(_request: web.Request) -> web.Response:
    """An empty answer."""
    return web.Response(status=204)


async def to_the_chat(request: web.Request) -> web.Response:
    """The server's own address (typed from a poster without /chat) opens the web chat."""
    query = request.rel_url.raw_query_string  # as sent: "%23" stays "%23"
    raise web.HTTPFound("/chat" + (f"?{query}" if query else ""))


def make_web_app(health: HealthCheck) -> web.Application:
    """Build the web application."""
    app = web.Application(client_max_size=64 * 1024)
    app[HEALTH_KEY] = health
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", to_the_chat)
    # Browsers ask for an icon on every page; an empty answer keeps their consoles clean.
    app.router.add_get("/favicon.ico", no_content)
    return app


def pages_for_missing(texts: Callable[[str], BoundTexts], admin_prefix: str) -> Middleware:
    """An address nobody serves (or a method it does not take) gets a short page in Danish and
    English with the way to the chat, instead of aiohttp's bare English "404: Not Found". The
    dashboard under ``admin_prefix`` has pages of its own."""
    answers = {404: "web.missing.not_found", 405: "web.missing.not_allowed"}

    def page(status: int) -> web.Response:
        parts = []
        for language in ("da", "en"):
            t = texts(language)
            parts.append(
                f'<section lang="{language}"><h1>{html.escape(t(answers[status]))}</h1>'
                f'<p><a href="/chat">{html.escape(t("web.missing.to_the_chat"))}</a></p>'
                "</section>"
            )
        body = (
            '<!doctype html>\n<html lang="da">\n<head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(texts('da')(answers[status]))}</title></head>\n"
            f"<body>{''.join(parts)}</body>\n</html>\n"
        )
        return web.Response(status=status, text=body, content_type="text/html")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as error:
            ours = request.path == admin_prefix or request.path.startswith(admin_prefix + "/")
            if (ours and isinstance(error, web.HTTPNotFound)) or error.content_type != "text/plain":
                raise  # the dashboard's own page, or a page a handler made
            response = page(error.status)
            if isinstance(error, web.HTTPMethodNotAllowed):
                response.headers["Allow"] = ",".join(sorted(error.allowed_methods))
            return response

    return middleware


class WebServer:
    """Serve a web application on a host and port until stopped."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        # No access log: request lines may carry identifiers, and health probes are noise.
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port

    async def start(self) -> None:
        """Bind and start serving."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()

    async def stop(self) -> None:
        """Stop serving, letting open requests finish briefly."""
        await asyncio.shield(self._runner.cleanup())
