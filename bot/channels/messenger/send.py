"""A thin aiohttp client for Messenger's Send API (Meta's Graph API), and its errors mapped.

Two calls: a message as JSON, and a message with a file (``filedata``, multipart) to
``/me/messages``, the page being the one the page access token is for
(developers.facebook.com/docs/messenger-platform/reference/send-api). Every message goes as
``messaging_type: RESPONSE``: standard messaging, within 24 hours of the citizen's last message.
The bot never sends message tags: they are for narrow uses (a confirmed event's update, an
account update…), and a consultation's news is none of them; outside the window Messenger
refuses, and the bulk lane does not try (``scheduler.publishing``).

A citizen's page-scoped id (PSID) is personal data: it goes into request bodies only.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bot.channels.meta.graph import GraphError, GraphHttp
from bot.dialogue.outbox import RecipientGone, Rejected, RetryLater, TransientFailure

# Messenger's error codes (developers.facebook.com/docs/messenger-platform/error-codes).
# Rate limits: 4 (application), 17 (user), 32 (page), 613 (calls to this API): wait, then the
# same message again.
RATE_LIMITED = {4, 17, 32, 613}
# The citizen cannot be written to now: 551 / 1545041 "This person isn't available right now"
# (blocked the page, deactivated), 2018001 "No matching user found", and 10 / 2018278 "sent
# outside of allowed window": the 24-hour window closed. Until they write again every message
# would be refused the same way, so they are marked unreachable (writing again undoes it), as
# WhatsApp's re-engagement error 131047 does.
RECIPIENT_GONE = {551, 1545041, 2018001, 2018278}
# Said to retry: 1 (unknown), 2 (service temporarily unavailable).
TRANSIENT = {1, 2}
# Meta names no time to wait; a page's limits are counted per second and over 24 hours.
RATE_WAIT_SECONDS = 10.0


def classify(error: GraphError) -> Exception:
    """What the outbox should do about a refusal: wait, give the citizen up, drop, or retry."""
    codes = {error.code, error.subcode}
    if codes & RATE_LIMITED or error.status == 429:
        return RetryLater(RATE_WAIT_SECONDS)
    if codes & RECIPIENT_GONE:
        return RecipientGone(f"Messenger error {error.code}/{error.subcode}")
    if codes & TRANSIENT or error.status >= 500:
        return TransientFailure(f"Messenger error {error.code} (HTTP {error.status})")
    # 100 (invalid parameter), 190 (token), 200 (permission)…: the same request fails again.
    return Rejected(f"Messenger error {error.code}: {error.message}")


class SendClient:
    """Send messages as the page the token is for."""

    def __init__(self, api_url: str, page_token: str) -> None:
        self._http = GraphHttp(api_url, page_token, classify)

    async def start(self) -> None:
        """Open the connection pool."""
        await self._http.start()

    async def stop(self) -> None:
        """Close the connection pool."""
        await self._http.stop()

    async def send(self, psid: str, message: dict[str, Any]) -> str:
        """Send one message object; return Messenger's message id (mid).

        Raises ``RetryLater``, ``RecipientGone``, ``Rejected`` or ``TransientFailure``.
        """
        body = {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": message}
        answer = await self._http.call("POST", "me/messages", data=json.dumps(body), json_body=True)
        return _message_id(answer)

    async def send_file(
        self, psid: str, kind: str, content: bytes, filename: str, mime_type: str
    ) -> str:
        """Upload and send a file or image (``kind``: file, image) in one request."""
        form = aiohttp.FormData()
        form.add_field("recipient", json.dumps({"id": psid}))
        form.add_field("messaging_type", "RESPONSE")
        form.add_field(
            "message",
            json.dumps({"attachment": {"type": kind, "payload": {"is_reusable": False}}}),
        )
        form.add_field("filedata", content, filename=filename, content_type=mime_type)
        return _message_id(await self._http.call("POST", "me/messages", data=form))


def _message_id(answer: Any) -> str:
    message_id = answer.get("message_id") if isinstance(answer, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise TransientFailure("Messenger answered without a message id")
    return message_id
