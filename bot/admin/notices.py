"""The moderation digest by e-mail, for moderators who work in the dashboard and not in a
Telegram group: how many contributions wait and for how long, and the queue's address. Counts
only; never a contribution's text or who wrote it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from bot.channels.email.sender import hand_to_smtp
from bot.config import Settings
from handlers.context import Texts
from storage.models import StaffAccount, StaffRole
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

QUEUE_PATH = "/admin/moderation"


class ModeratorMail:
    """Sends a digest to every moderator account (to the admins when there is no moderator)."""

    def __init__(self, settings: Settings, texts: Texts, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._t = texts
        self._clock = clock

    async def __call__(self, uow: UnitOfWork, digest: str) -> None:
        recipients = recipients_of(await uow.staff.all())
        if not recipients:
            return
        for account in recipients:
            # One message each: colleagues' addresses are not handed around in a To line.
            await asyncio.to_thread(hand_to_smtp, self._settings, self._compose(account, digest))
        logger.info("moderation digest e-mailed to %d account(s)", len(recipients))

    def _compose(self, account: StaffAccount, digest: str) -> EmailMessage:
        t, settings = self._t, self._settings
        organisation = settings.organisation_name or t("organisation.unnamed")
        queue = settings.public_base_url + QUEUE_PATH
        message = EmailMessage()
        message["Subject"] = t("admin.notice.subject", organisation=organisation)
        message["From"] = settings.smtp_from
        message["To"] = account.email
        message["Date"] = format_datetime(self._clock())
        domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2]
        message["Message-ID"] = make_msgid(domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        body = [digest, t("admin.notice.open", link=queue), "-- \n" + t("admin.notice.why")]
        message.set_content("\n\n".join(body), charset="utf-8")
        return message


def recipients_of(accounts: list[StaffAccount]) -> list[StaffAccount]:
    """The moderators; without any, the admins (someone must hear that contributions wait)."""
    moderators = [a for a in accounts if a.role == StaffRole.MODERATOR]
    return moderators or [a for a in accounts if a.role == StaffRole.ADMIN]
