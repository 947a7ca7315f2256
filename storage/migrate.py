"""Run Alembic migrations from code, on the application's own async engine."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import is_sqlite

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration's revision (tests/test_storage.py checks it against alembic's reading of
# the folder). A start whose database is already there compares against it without importing
# alembic, which a running process would otherwise keep in memory (about 11 MB) for nothing.
HEAD_REVISION = "0014"


@dataclass(frozen=True)
class SchemaStatus:
    """Where the database schema stands against the migrations this code ships."""

    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        """Whether no migration is pending."""
        return self.current == self.head


class SchemaOutdated(Exception):
    """The schema does not fit this version (behind it on PostgreSQL, where an operator must
    migrate deliberately; newer; or recorded wrongly)."""


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """Return the newest migration this code ships, as alembic reads the migrations folder."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def is_known_revision(revision: str) -> bool:
    """Whether this code ships a migration with this revision (an older or the newest one)."""
    if revision == HEAD_REVISION:
        return True
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except Exception:  # alembic: "Can't locate revision identified by …"
        return False


def _current(connection: Connection) -> str | None:
    """The database's revision, read from alembic's table as alembic keeps it (None: empty)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revisions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    recorded = sorted(revisions)
    if len(recorded) > 1:
        # Our migrations form one line; several rows mean the table was edited by hand.
        raise SchemaOutdated(
            f"the database records several schema revisions ({', '.join(recorded)}): "
            "alembic_version must hold one row"
        )
    return recorded[0] if recorded else None


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    """Compare the database's revision with the newest migration."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_current)
    return SchemaStatus(current=current, head=HEAD_REVISION)


async def upgrade(engine: AsyncEngine) -> SchemaStatus:
    """Apply every pending migration; return the status before the upgrade."""
    before = await schema_status(engine)
    if not before.up_to_date:
        from alembic import command

        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
    return before


async def prepare_schema(engine: AsyncEngine, url: str) -> None:
    """Bring an SQLite schema up to date; refuse to run on an outdated PostgreSQL schema.

    An embedded SQLite file belongs to this process, so upgrading it is safe. A PostgreSQL
    database may be shared by several processes and versions; migrating it is a deliberate step.
    """
    if is_sqlite(url):
        before = await upgrade(engine)
        if before.current is None:
            logger.info("created the database schema (revision %s)", before.head)
        elif not before.up_to_date:
            logger.info("database migrated from %s to %s", before.current, before.head)
        return
    status = await schema_status(engine)
    if status.current is not None and not is_known_revision(status.current):
        # A newer version migrated it (a rolling upgrade, or a rollback): migrating cannot help.
        raise SchemaOutdated(
            f"the database schema is at revision {status.current}, newer than this version "
            f"knows (up to {status.head}): run the version that migrated it, or a newer one"
        )
    if not status.up_to_date:
        raise SchemaOutdated(
            f"the database schema is at revision {status.current or 'none'}, this version needs "
            f"{status.head}: run 'borgerdialog migrate' first"
        )
