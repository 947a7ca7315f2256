"""On PostgreSQL, 'run' refuses an outdated schema and 'migrate' brings it up to date."""

from __future__ import annotations

from pathlib import Path

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
