"""Deliver ``email`` outbox messages over SMTP: plain text in the citizen's language.

The chat id of an e-mail message is the id of the address's row, so the address itself stays in
its table. A message goes only to a confirmed address, except the one that carries the
address's own confirmation link. Buttons become lines with a plain link (a button that only
works in a chat is left out); every message ends with a one-click unsubscribe link, which is
also in the ``List-Unsubscribe`` header.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from urllib.parse import urljoin

from bot.channels.email.links import UnsubscribeLinks
from bot.config import Settings
from bot.dialogue.channel import ChannelLimits
from bot.dialogue.outbox import RecipientGone, Rejected, TransientFailure
from bot.dialogue.tasks import stop_tasks
from handlers.context import LAST_LANGUAGE, Texts
from handlers.email import CONFIRM_PATH
from handlers.events import record_id
from storage.email import EMAIL_CHANNEL
from storage.models import EmailAddress
from storage.uow import UnitOfWorkFactory

logger = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 30.0
# How often addresses whose confirmation link expired unused are erased.
PURGE_EVERY_SECONDS = 3600.0


class EmailChannel:
    """The e-mail channel's sender, and the job that erases addresses never confirmed."""

    channel = EMAIL_CHANNEL
    # A mail has no length limit worth the name; buttons become links. Not paced: the SMTP
    # relay queues what it is given.
    limits = ChannelLimits(
        max_text=100_000,
        max_caption=100_000,
        max_button_label=200,
        max_button_payload_bytes=64,
        max_image_bytes=10_000_000,
    )

    def __init__(
        self,
        settings: Settings,
        uow: UnitOfWorkFactory,
        texts_in: Callable[[str | None], Texts],
        links: UnsubscribeLinks,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._uow = uow
        self._texts_in = texts_in
        self._links = links
        self._clock = clock
        self._purger: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start erasing expired unconfirmed addresses in the background."""
        self._purger = asyncio.create_task(self._purge_periodically(), name="email-purge")

    async def stop(self) -> None:
        """Stop the background job."""
        await stop_tasks(self._purger)
        self._purger = None

    async def purge_unconfirmed(self) -> int:
        """Erase addresses whose confirmation link expired unused; return how many."""
        async with self._uow() as unit:
            erased = await unit.email.purge_unconfirmed(self._clock())
            await unit.commit()
        return erased

    async def _purge_periodically(self) -> None:
        while True:
            try:
                erased = await self.purge_unconfirmed()
                if erased:
                    logger.info("erased %d e-mail address(es) never confirmed", erased)
            except Exception as error:
                # The next round tries again; an address kept an hour longer harms nobody.
                logger.warning("erasing unconfirmed addresses failed: %s", type(error).__name__)
            await asyncio.sleep(PURGE_EVERY_SECONDS)

    async def deliver(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Send one message to the address a chat id names."""
        if payload.get("type") != "message" or payload.get("edit_ref"):
            # Acknowledgements and edits belong to a chat; nothing to e-mail.
            raise Rejected("only new messages can be sent by e-mail")
        address_id = record_id(chat_id)
        if address_id is None:
            raise RecipientGone("no such e-mail address")
        async with self._uow.read() as unit:
            row = await unit.email.get(address_id)
            participant = await unit.participants.by_id(row.participant_id) if row else None
        if row is None or participant is None:
            raise RecipientGone("the address was erased")
        confirming = _carries_confirmation(payload)
        if row.confirmed_at is None and not confirming:
            raise RecipientGone("the address is not confirmed")
        language = participant.language or participant.state.get(LAST_LANGUAGE)
        message = self._compose(row, payload, self._texts_in(language), confirming)
        await asyncio.to_thread(self._send, message)
        return None

    def _compose(
        self, row: EmailAddress, payload: dict[str, Any], t: Texts, confirming: bool
    ) -> EmailMessage:
        organisation = self._settings.organisation_name or t("organisation.unnamed")
        base = self._settings.public_base_url + "/"
        unsubscribe = self._links.url(row.id)
        lines = [str(payload.get("text") or "")]
        links = [
            f"{button['label']}: {urljoin(base, button['url'])}"
            for buttons in payload.get("buttons") or []
            for button in buttons
            if button.get("url")
        ]
        if links:
            lines.append("\n".join(links))
        lines.append("-- \n" + t("email.footer", organisation=organisation, link=unsubscribe))
        message = EmailMessage()
        subject = "email.subject_confirm" if confirming else "email.subject"
        message["Subject"] = t(subject, organisation=organisation)
        message["From"] = self._settings.smtp_from
        message["To"] = row.address
        message["Date"] = format_datetime(self._clock())
        domain = parseaddr(self._settings.smtp_from)[1].rpartition("@")[2]
        message["Message-ID"] = make_msgid(domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        message["List-Unsubscribe"] = f"<{unsubscribe}>"
        # RFC 8058: mail programs may unsubscribe with one POST, no page to read.
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content("\n\n".join(lines), charset="utf-8")
        return message

    def _send(self, message: EmailMessage) -> None:
        """Hand one message to the SMTP server (blocking: runs in a worker thread)."""
        try:
            hand_to_smtp(self._settings, message)
        except smtplib.SMTPRecipientsRefused as refusal:
            # Never the address in an error: errors are stored and shown to staff.
            code = next(iter(refusal.recipients.values()))[0]
            if code >= 500:
                raise RecipientGone(f"the mail server refused the address ({code})") from None
            raise TransientFailure(f"the mail server deferred the address ({code})") from None
        except smtplib.SMTPAuthenticationError as refusal:
            logger.error(
                "the mail server refused BORGERDIALOG_SMTP_USERNAME/PASSWORD (%s)",
                refusal.smtp_code,
            )
            raise TransientFailure(f"SMTP login refused ({refusal.smtp_code})") from None
        except smtplib.SMTPResponseException as refusal:
            reason = f"the mail server answered {refusal.smtp_code}"
            if refusal.smtp_code >= 500:
                raise Rejected(reason) from None
            raise TransientFailure(reason) from None
        except (smtplib.SMTPException, OSError) as failure:
            raise TransientFailure(f"mail server: {type(failure).__name__}") from None


def _carries_confirmation(payload: dict[str, Any]) -> bool:
    """Whether a message holds an address's confirmation link (the flow puts it in a button)."""
    return any(
        str(button.get("url") or "").startswith(CONFIRM_PATH + "?")
        for buttons in payload.get("buttons") or []
        for button in buttons
    )


def hand_to_smtp(settings: Settings, message: EmailMessage) -> None:
    """One SMTP session for one message, with the configured TLS and login (blocking).

    smtplib's errors pass through: each caller knows what a refusal means for its message.
    """
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username and settings.smtp_password is not None:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)
