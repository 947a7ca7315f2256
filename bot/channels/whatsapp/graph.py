"""A thin aiohttp client for the WhatsApp Cloud API (Meta's Graph API), and its errors mapped.

Why our own client rather than pywa: the channel needs four calls (send a message, upload a
file, and nothing else at run time), the bot already runs on aiohttp (the HTTP client decides
the ceiling, DESIGN.md §5), and the webhook must store every delivery in the inbox before it
answers 200, which a library's own webhook dispatcher does not do. pywa would add its own HTTP
client (httpx) and object model for everything the Cloud API offers, to send a few JSON bodies.

The Graph API's calls and error shape are Meta's, shared with Messenger
(``bot.channels.meta.graph``); WhatsApp's codes decide what the outbox does (``classify``). The
phone number of a citizen (their ``wa_id``) is personal data: it goes into request bodies only,
never into a log line or an exception's message.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bot.channels.meta.graph import GraphError, GraphHttp
from bot.dialogue.outbox import RecipientGone, Rejected, RetryLater, TransientFailure

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
        self._http = GraphHttp(api_url, token, classify)
        self._phone_number_id = phone_number_id

    async def start(self) -> None:
        """Open the connection pool."""
        await self._http.start()

    async def stop(self) -> None:
        """Close the connection pool."""
        await self._http.stop()

    async def send(self, message: dict[str, Any]) -> str:
        """POST one message (``to``, ``type`` and its part); return WhatsApp's id (wamid).

        Raises ``RetryLater``, ``RecipientGone``, ``Rejected`` or ``TransientFailure``.
        """
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", **message}
        answer = await self._http.call(
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
        answer = await self._http.call("POST", f"{self._phone_number_id}/media", data=form)
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise TransientFailure("WhatsApp answered an upload without a media id")
        return media_id
