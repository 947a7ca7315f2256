"""What a flow is handed for one event: the event, who sent it, texts, storage, the time."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from handlers.events import ChatAddress, InboundEvent
from handlers.screening.rules import Screener
from storage.models import Participant
from storage.uow import UnitOfWork

# The participant state key for the language they were last answered in.
LAST_LANGUAGE = "last_language"


def language_of(participant: Participant) -> str | None:
    """The language to write to a participant in when they did not just write: chosen, or last."""
    return participant.language or participant.state.get(LAST_LANGUAGE)


class Texts(Protocol):
    """Look up a user-facing text in the participant's language."""

    @property
    def language(self) -> str:
        """The language the texts are in."""
        ...

    def __call__(self, key: str, /, **params: object) -> str:
        """Return the text for a key, with the parameters filled in."""
        ...

    def n(self, key: str, count: int, /, **params: object) -> str:
        """Return the text for a number in its plural form (1 idé, 4 idéer)."""
        ...


@dataclass(frozen=True)
class OrganisationInfo:
    """Facts about the authority running the bot that texts refer to."""

    name: str
    privacy_contact: str
    retention_days: int


@dataclass
class FlowContext:
    """Everything one flow invocation may use; the unit of work is already open."""

    event: InboundEvent
    participant: Participant
    uow: UnitOfWork
    t: Texts
    now: datetime
    organisation: OrganisationInfo
    zone: ZoneInfo
    # The language of a free text (langdetect, seeded); None when too short to tell.
    detect_language: Callable[[str], str | None]
    screener: Screener
    moderation: ModerationDesk
    # Texts in another language (for a message to someone else); None: the default language.
    texts_in: Callable[[str | None], Texts]
    # Where communications staff manage the content plan, when a staff chat is configured.
    staff_chat: ChatAddress | None = None
    # The secret that makes staff and moderator pseudonyms irreversible (see staff_pseudonym).
    pseudonym_key: bytes = b""
    # Whether the WhatsApp channel is configured: staff planning a post then name its template.
    whatsapp_enabled: bool = False
    # The participant was stored by this event (their first): they have no participation yet.
    first_contact: bool = False

    def staff_pseudonym(self) -> str:
        """A stable pseudonym for the staff member or moderator who acted, for audit trails.

        Keyed with a secret of this installation: a plain hash of a Telegram id is reversed by
        trying every id, this one only by someone who holds the secret.
        """
        sender = f"{self.event.channel}:{self.event.sender_id or '?'}"
        return hmac.new(self.pseudonym_key, sender.encode(), "sha256").hexdigest()[:10]


@dataclass(frozen=True)
class ModerationDesk:
    """Where moderators work, and how long an item may wait before a digest reminds them."""

    chat: ChatAddress | None
    digest_after_minutes: int = 60
