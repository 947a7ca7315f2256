"""Security headers on every response of the web server, in one place."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.config import Settings

logger = logging.getLogger(__name__)

# The one page other sites may put in an iframe; everything else refuses to be framed.
FRAMEABLE_PATH = "/chat"
# The dashboard: its forms post to itself, and nothing of it may be framed (clickjacking).
ADMIN_PREFIX = "/admin"
ADMIN_POLICY = "; ".join(
    (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600


def content_security_policy(settings: Settings, frameable: bool) -> str:
    """The policy for a response: only our own files, and a socket only to our own chat."""
    base = settings.public_base_url
    socket = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/chat/ws"
    ancestors = " ".join(sorted(settings.allowed_origins)) if frameable else "'none'"
    return "; ".join(
        (
            "default-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {socket}",
            "object-src 'none'",
            "base-uri 'none'",
            # The page's one form is sent by its script; without it, typed text must not end
            # up in an address.
            "form-action 'none'",
            f"frame-ancestors {ancestors}",
        )
    )


def security_headers(settings: Settings) -> Middleware:
    """A middleware that puts the security headers on every response, errors included."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if settings.public_base_url.startswith("https://"):
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_SECONDS}"
    policies = {
        frameable: content_security_policy(settings, frameable) for frameable in (True, False)
    }

    def apply(request: web.Request, response: web.StreamResponse) -> None:
        if response.prepared:
            # A WebSocket answer has gone out already (its handshake needs none of these).
            return
        response.headers.update(headers)
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            response.headers["Content-Security-Policy"] = ADMIN_POLICY
        else:
            response.headers["Content-Security-Policy"] = policies[request.path == FRAMEABLE_PATH]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            apply(request, error)
            raise
        except Exception:
            # What aiohttp would do, but with the headers on the error page too.
            logger.exception("web request to %s failed", request.path)
            response = web.Response(status=500, text="500 Internal Server Error")
        apply(request, response)
        return response

    return middleware
