"""Calls to Meta's Graph API over aiohttp, and its refusals read into the outbox's exceptions.

The Graph API answers an error as ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`` (developers.facebook.com/docs/graph-api/guides/error-handling); each channel
decides from the codes what the outbox does (its ``classify``). A citizen's id on the platform
(a phone number, a page-scoped id) is personal data: it goes into request bodies only, never
into a log line or an exception's message, and the token goes in a header, never into a URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from bot.dialogue.outbox import TransientFailure

REQUEST_TIMEOUT_SECONDS = 20.0


class GraphError(Exception):
    """The Graph API's refusal: its code and subcode, and a message without personal data."""

    def __init__(self, status: int, code: int, subcode: int | None, message: str) -> None:
        super().__init__(f"Graph API error {code} (HTTP {status}): {message}")
        self.status = status
        self.code = code
        self.subcode = subcode
        self.message = message


def read_error(status: int, body: Any) -> GraphError:
    """The error a Graph API answer carries (any answer that is not 2xx)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(status, 0, None, "no error object in the answer")
    code = error.get("code")
    subcode = error.get("error_subcode")
    # Meta's messages name the parameter, never the recipient; cut them short all the same.
    message = str(error.get("message") or "")[:160]
    return GraphError(
        status,
        code if isinstance(code, int) else 0,
        subcode if isinstance(subcode, int) else None,
        message,
    )


class GraphHttp:
    """One connection pool to the Graph API with a bearer token; refusals raised as classified."""

    def __init__(self, api_url: str, token: str, classify: Callable[[GraphError], Exception]):
        self._base = api_url.rstrip("/")
        self._token = token
        self._classify = classify
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
                headers={"Authorization": f"Bearer {self._token}"},
            )

    async def stop(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, path: str, *, data: Any, json_body: bool = False) -> Any:
        """Make one request; return the decoded answer, or raise what ``classify`` says."""
        await self.start()
        assert self._session is not None
        headers = {"Content-Type": "application/json"} if json_body else None
        try:
            async with self._session.request(
                method, f"{self._base}/{path}", data=data, headers=headers
            ) as response:
                try:
                    answer = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    answer = None
                if response.status >= 300:
                    error = read_error(response.status, answer)
                    raise self._classify(error) from error
                return answer
        except (TimeoutError, aiohttp.ClientError) as error:
            # The message may or may not have arrived; the outbox decides whether to try again.
            raise TransientFailure(type(error).__name__) from error
