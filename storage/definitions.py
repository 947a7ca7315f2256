"""Consultation definitions kept in memory while the stored definition version stays put.

Every event reads the consultation it concerns, its rounds and its questions, which change only
when staff import or edit a definition. Each process keeps what it read; a unit of work asks the
database for the version (one row, by primary key) the first time it needs a definition, unless
the claim of the event it applies read it along already, and every change of a definition moves
the version in the same transaction. So a unit never sees a definition older than the last
committed change, in any process, while the consultation, its rounds and its questions cost one
small read instead of three queries and their ORM objects.

What the cache hands out are ORM objects no session holds any more: fine to read, never to
change. A unit of work that changes definitions reads them from the database instead
(``ConsultationRepository.begin_change``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import run_core
from storage.models import DefinitionVersion


class DefinitionCache:
    """What one process has read of the consultation definitions, by version."""

    def __init__(self) -> None:
        self._version: int | None = None
        # Moves whenever the entries are dropped: a unit that began reading before then must
        # not put what it read (possibly older) among the new entries.
        self.generation = 0
        self._entries: dict[tuple[Any, ...], Any] = {}

    async def current_generation(self, session: AsyncSession) -> int:
        """Drop every entry if the stored version moved; return the generation now valid."""
        version = await read_version(session)
        if version != self._version:
            self._version = version
            self._drop()
        return self.generation

    def get(self, key: tuple[Any, ...]) -> Any:
        """The entry for a key, or None."""
        return self._entries.get(key)

    def put(self, key: tuple[Any, ...], value: Any, generation: int) -> None:
        """Keep what a unit read, unless the entries were dropped since it began reading."""
        if generation == self.generation:
            self._entries[key] = value

    def invalidate(self) -> None:
        """This process changed a definition: drop everything."""
        self._drop()

    def _drop(self) -> None:
        self._entries.clear()
        self.generation += 1


# Read by every unit of work that needs a definition: built once.
_VERSION = select(DefinitionVersion.version).where(DefinitionVersion.id == 1)
# The same as a column of a statement the unit runs anyway (the claim of the event it applies,
# storage/repositories.py): on PostgreSQL every statement is a round trip, and this one ran
# for every update.
STORED_VERSION = _VERSION.scalar_subquery()
# Where a unit's session keeps the version such a statement read, with the transaction it
# read it in.
_READ_IN_UNIT = "borgerdialog_definition_version"


def note_version(session: AsyncSession, version: int | None) -> None:
    """Keep the version a statement of this transaction read along with its own work."""
    sync = session.sync_session
    sync.info[_READ_IN_UNIT] = (sync.get_transaction(), int(version or 0))


async def read_version(session: AsyncSession) -> int:
    """The stored definition version, as read in this transaction already or now."""
    sync = session.sync_session
    noted = sync.info.get(_READ_IN_UNIT)
    if noted is not None and noted[0] is not None and noted[0] is sync.get_transaction():
        return int(noted[1])
    # On the connection, not the session: a flow's changes need not be flushed (an autoflush
    # of its own) before a row no flow writes is read.
    return int((await run_core(session, _VERSION)).scalar_one_or_none() or 0)


async def move_version(session: AsyncSession) -> None:
    """Tell every process that definitions changed (takes effect with the commit)."""
    await session.execute(
        update(DefinitionVersion)
        .where(DefinitionVersion.id == 1)
        .values(version=DefinitionVersion.version + 1)
    )
