"""What every channel that takes webhook deliveries shares, whatever the platform."""

from __future__ import annotations

from aiohttp import web


async def read_capped(request: web.Request, cap: int) -> bytes | None:
    """The request's body, or None if it is longer than ``cap`` bytes (read no further)."""
    if request.content_length is not None and request.content_length > cap:
        return None
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)
