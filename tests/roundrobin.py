"""A small round-robin reverse proxy for tests: real HTTP, one request to each backend in turn.

It stands where an operator's load balancer stands (nginx, Caddy) in front of several
``borgerdialog run`` processes. A backend that refuses the connection (a killed process) is
skipped and the request goes to the next, as nginx's ``proxy_next_upstream error`` does; the
answer is 502 only when no backend takes it. A request that reached a backend which then died
before answering is not sent again: nginx does not pass a non-idempotent request (a POST) to the
next server once it was sent, and answers 502, so Telegram delivers it again later.

It runs on its own event loop in a background thread, so a test can kill backends under it.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

# Headers that belong to one connection, not to the request (RFC 9110 7.6.1), and those aiohttp
# sets itself for the next hop.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


class RoundRobinProxy:
    """Forward every request on ``port`` to the next of the backends' ports on 127.0.0.1."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = list(backends)
        self.port = 0
        # Requests each backend answered (by port), and the proxy's own 502s (as port 0).
        self.answered: Counter[int] = Counter()
        self.refused: Counter[int] = Counter()
        self._turn = itertools.cycle(range(len(self.backends)))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="round-robin-proxy"
        )
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def counts(self) -> dict[int, int]:
        """How many requests each backend answered so far (port: count; 0 for the proxy's 502s)."""
        return self._read(self.answered)

    def failures(self) -> dict[int, int]:
        """How many requests each backend did not answer (refused, or died before answering)."""
        return self._read(self.refused)

    def _read(self, counter: Counter[int]) -> dict[int, int]:
        async def read() -> dict[int, int]:
            return dict(counter)

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)

    async def _start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        self.port = listening.getsockname()[1]
        await web.SockSite(self._runner, listening).start()
        # No pool limit: the proxy must not be the bottleneck between Telegram and the bots.
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=60),
            auto_decompress=False,
        )

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = request.remote or ""
        first = next(self._turn)
        for step in range(len(self.backends)):
            port = self.backends[(first + step) % len(self.backends)]
            url = f"http://127.0.0.1:{port}{request.rel_url}"
            try:
                async with self._client.request(
                    request.method, url, data=body, headers=headers, allow_redirects=False
                ) as answer:
                    content = await answer.read()
                    self.answered[port] += 1
                    return web.Response(
                        status=answer.status, body=content, headers=_end_to_end(answer.headers)
                    )
            except aiohttp.ClientConnectorError:
                # Nothing reached this backend: the next one may take the request.
                self.refused[port] += 1
                continue
            except (aiohttp.ClientError, TimeoutError):
                # The backend took the request and died (or hung) before answering.
                self.refused[port] += 1
                if request.method in IDEMPOTENT:
                    continue
                break
        self.answered[0] += 1
        return web.Response(status=502, text="no backend answered")


def _end_to_end(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
