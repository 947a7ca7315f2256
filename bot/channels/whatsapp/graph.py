"""A thin aiohttp client for the WhatsApp Cloud API (Meta's Graph API), and its errors mapped.

Why our own client rather than pywa: the channel needs four calls (send a message, upload a
file, and nothing else at run time), the bot already runs on aiohttp (the HTTP client decides
the ceiling, DESIGN.md §5), and the webhook must store every delivery in the inbox before it
answers 200, which a library's own webhook dispatcher does not do. pywa would add its own HTTP
client (httpx) and object model for everything the Cloud API offers, to send a few JSON bodies.

The Graph API answers an error as ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}``; the codes decide what the outbox does (``classify``). The phone number of a
citizen (their ``wa_id``) is personal data: it goes into request bodies only, never into a log
line or an exception's message.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from bot.dialogue.outbox import RecipientGone, Rejected, RetryLater, TransientFailure

logger = logging.getLogger(__name__)

# Graph API error codes (developers.facebook.com/documentation/business-messaging/whatsapp/
# support/error-codes). Throughput (130429) and the per-user pair rate (131056): wait, then the
# same message again. 80007 is the business account's own rate limit, 4 the app's.
RATE_LIMITED = {4, 80007, 130429, 131056}
# The citizen cannot be written to now: the 24-hour window closed (131047: "re-engagement
# message"), or the number cannot get the message (131026: not on WhatsApp, blocked the
# business, an old app), or they stopped such messages (131050).
RECIPIENT_GONE = {131026, 131047, 131050}
# What we sent is wrong and stays wrong: an invalid or missing parameter, an unknown template.
REFUSED = {100, 131008, 131009, 131021, 131051, 132000, 132001, 132005, 132012, 132015, 132016}
# Said to retry: 1 (unknown), 2 (service), 131000 (something went wrong), 131016 (overloaded).
TRANSIENT = {1, 2, 131000, 131016}
# How long to wait on a rate limit: Meta names no time. The pair rate is one message in six
# seconds sustained, so six seconds waits out a pair-limit for certain.
RATE_WAIT_SECONDS = 6.0
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


def classify(error: GraphError) -> Exception:
    """What the outbox should do about a refusal: wait, give the citizen up, drop, or retry."""
    codes = {error.code, error.subcode}
    if codes & RATE_LIMITED or error.status == 429:
        return RetryLater(RATE_WAIT_SECONDS)
    if codes & RECIPIENT_GONE:
        return RecipientGone(f"WhatsApp error {error.code}")
    if codes & TRANSIENT or error.status >= 500:
        return TransientFailure(f"WhatsApp error {error.code} (HTTP {error.status})")
    if codes & REFUSED or 400 <= error.status < 500:
        return Rejected(f"WhatsApp error {error.code}: {error.message}")
    return TransientFailure(f"WhatsApp error {error.code} (HTTP {error.status})")


class GraphClient:
    """Send messages and upload files for one business phone number."""

    def __init__(self, api_url: str, token: str, phone_number_id: str) -> None:
        self._base = api_url.rstrip("/")
        self._token = token
        self._phone_number_id = phone_number_id
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

    async def send(self, message: dict[str, Any]) -> str:
        """POST one message (``to``, ``type`` and its part); return WhatsApp's id (wamid).

        Raises ``RetryLater``, ``RecipientGone``, ``Rejected`` or ``TransientFailure``.
        """
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", **message}
        answer = await self._call(
            "POST", f"{self._phone_number_id}/messages", data=json.dumps(body), json_body=True
        )
        messages = answer.get("messages") if isinstance(answer, dict) else None
        if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
            raise TransientFailure("WhatsApp answered without a message id")
        return str(messages[0].get("id") or "")

    async def upload(self, content: bytes, filename: str, mime_type: str) -> str:
        """Upload a file for a message (a document, an image); return its media id."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", content, filename=filename, content_type=mime_type)
        answer = await self._call("POST", f"{self._phone_number_id}/media", data=form)
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise TransientFailure("WhatsApp answered an upload without a media id")
        return media_id

    async def _call(self, method: str, path: str, *, data: Any, json_body: bool = False) -> Any:
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
                    raise classify(error) from error
                return answer
        except (TimeoutError, aiohttp.ClientError) as error:
            # The message may or may not have arrived; the outbox decides whether to try again.
            raise TransientFailure(type(error).__name__) from error
