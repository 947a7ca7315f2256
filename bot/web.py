"""The aiohttp web server: health, the web chat and the Telegram webhook (dashboard later)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

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


def make_web_app(health: HealthCheck) -> web.Application:
    """Build the web application."""
    app = web.Application(client_max_size=64 * 1024)
    app[HEALTH_KEY] = health
    app.router.add_get("/healthz", healthz)
    # Browsers ask for an icon on every page; an empty answer keeps their consoles clean.
    app.router.add_get("/favicon.ico", no_content)
    return app


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
