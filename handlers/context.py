"""What a flow is handed for one event: the event, who sent it, texts, storage, the time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from handlers.events import InboundEvent
from storage.models import Participant
from storage.uow import UnitOfWork


class Texts(Protocol):
    """Look up a user-facing text in the participant's language."""

    @property
    def language(self) -> str:
        """The language the texts are in."""
        ...

    def __call__(self, key: str, /, **params: object) -> str:
        """Return the text for a key, with the parameters filled in."""
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
