"""The unit of work: one session per update or job run, committed or rolled back here only."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.definitions import DefinitionCache
from storage.email import EmailRepository
from storage.ideas import IdeasRepository
from storage.moderation import ModerationRepository
from storage.notifications import NotificationRepository
from storage.plan import PlanRepository
from storage.repositories import (
    ConsultationRepository,
    InboxRepository,
    OutboxRepository,
    ParticipantRepository,
    ParticipationRepository,
    WebMessageRepository,
    write_changed_records,
)
from storage.staff import StaffRepository


class UnitOfWork:
    """Open a session, expose the repositories over it, and end it in exactly one place.

    Use as ``async with uow_factory() as uow: …; await uow.commit()``. Leaving the block without
    ``commit()`` — by an exception or on purpose — rolls everything back.
    """

    participants: ParticipantRepository
    inbox: InboxRepository
    outbox: OutboxRepository
    consultations: ConsultationRepository
    participations: ParticipationRepository
    web_messages: WebMessageRepository
    moderation: ModerationRepository
    ideas: IdeasRepository
    plan: PlanRepository
    email: EmailRepository
    notifications: NotificationRepository
    staff: StaffRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        definitions: DefinitionCache | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._definitions = definitions
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> UnitOfWork:
        self._session = self._session_factory()
        self.participants = ParticipantRepository(self._session)
        self.inbox = InboxRepository(self._session)
        self.outbox = OutboxRepository(self._session)
        self.consultations = ConsultationRepository(self._session, self._definitions)
        self.participations = ParticipationRepository(self._session)
        self.web_messages = WebMessageRepository(self._session)
        self.moderation = ModerationRepository(self._session)
        self.ideas = IdeasRepository(self._session)
        self.plan = PlanRepository(self._session)
        self.email = EmailRepository(self._session)
        self.notifications = NotificationRepository(self._session)
        self.staff = StaffRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._session is not None
        # Closing ends the database transaction: whatever was not committed is rolled back.
        # Unlike rollback(), it leaves loaded objects readable, so a read-only unit can hand
        # what it read to code that runs after the unit (and its connection) is gone.
        await self._session.close()
        self._session = None

    async def commit(self) -> None:
        """Make every change of this unit permanent."""
        assert self._session is not None, "commit() outside 'async with'"
        await write_changed_records(self._session)
        await self._session.commit()
        if self.consultations.changing and self._definitions is not None:
            # Changed definitions: this process must not serve what it cached before.
            self._definitions.invalidate()


class UnitOfWorkFactory:
    """Hand out fresh units of work; the one object handlers and jobs get for storage."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        read_session_factory: async_sessionmaker[AsyncSession] | None = None,
        definitions: DefinitionCache | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._read_session_factory = read_session_factory or session_factory
        # Shared by every unit of this process (None: always read definitions anew).
        self._definitions = definitions

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self._session_factory, self._definitions)

    def read(self) -> UnitOfWork:
        """A unit that only reads: on SQLite it never waits for a writer's lock."""
        return UnitOfWork(self._read_session_factory, self._definitions)
