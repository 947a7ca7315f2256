"""On PostgreSQL, 'run' refuses an outdated schema and 'migrate' brings it up to date."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from storage.database import create_engine
from storage.migrate import head_revision
from tests.cli import borgerdialog, in_process
from tests.conftest import PostgresProvider
from tests.postgres import free_port


def test_run_refuses_an_unmigrated_postgresql_and_migrate_fixes_it(
    postgres: PostgresProvider, tmp_path: Path
) -> None:
    url = postgres.new_database()
    env = {"BORGERDIALOG_DATABASE_URL": url, "BORGERDIALOG_HTTP_PORT": str(free_port())}
    refused = borgerdialog("run", cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"borgerdialog: the database schema is at revision none, this version needs "
        f"{head_revision()}: "
        "run 'borgerdialog migrate' first"
    )
    migrated = in_process("migrate", cwd=tmp_path, env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert f"from empty to {head_revision()}" in migrated.stdout


def test_an_older_version_on_a_newer_schema_says_so(
    postgres: PostgresProvider, tmp_path: Path
) -> None:
    url = postgres.new_database(migrated=True)

    async def migrated_by_a_newer_version() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
        finally:
            await engine.dispose()

    asyncio.run(migrated_by_a_newer_version())
    env = {"BORGERDIALOG_DATABASE_URL": url, "BORGERDIALOG_HTTP_PORT": str(free_port())}
    refused = borgerdialog("run", cwd=tmp_path, env=env)
    assert refused.returncode == 1
    # Not "run 'borgerdialog migrate' first": migrating cannot make a schema older.
    assert refused.stderr.strip().splitlines()[-1] == (
        "borgerdialog: the database schema is at revision 0999, newer than this version knows "
        f"(up to {head_revision()}): run the version that migrated it, or a newer one"
    )
