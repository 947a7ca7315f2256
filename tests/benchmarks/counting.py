"""Run a borgerdialog command while counting the SQL statements and ORM flushes it makes.

Used by ``python -m tests.benchmarks.load --count-statements DIR``: the bot under test starts as
``python tests/benchmarks/counting.py OUTPUT demo`` in the checkout being measured, and writes
``OUTPUT`` when it stops: one line per distinct statement (count, tab, the statement's first
160 characters), and ``flush`` lines for flushes that wrote something, by where they came from.
Counts, unlike CPU time, do not move with a busy machine, so two versions compare exactly.
"""

from __future__ import annotations

import atexit
import collections
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def install(output: Path) -> None:
    """Count from now on; write the counts to ``output`` when the process ends."""
    import greenlet
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    counts: collections.Counter[str] = collections.Counter()

    @event.listens_for(Engine, "before_cursor_execute")
    def statement(
        _connection: Any, _cursor: Any, text: str, _parameters: Any, _context: Any, _many: bool
    ) -> None:
        counts[" ".join(text.split())[:160]] += 1

    # Statements run straight on the driver (storage.database.run_core) pass SQLAlchemy's events
    # by; versions before it have no such path.
    import storage.database as database

    straight = getattr(database, "_run_sqlite", None)
    if straight is not None:

        def counted(driver: Any, sql: str, arguments: list[Any]) -> Any:
            counts[" ".join(sql.split())[:160]] += 1
            return straight(driver, sql, arguments)

        database._run_sqlite = counted  # type: ignore[attr-defined]
    on_asyncpg = getattr(database, "_run_asyncpg", None)
    if on_asyncpg is not None:

        async def counted_on_asyncpg(cursor: Any, sql: str, arguments: list[Any]) -> Any:
            counts[" ".join(sql.split())[:160]] += 1
            return await on_asyncpg(cursor, sql, arguments)

        database._run_asyncpg = counted_on_asyncpg  # type: ignore[attr-defined]

    @event.listens_for(Session, "before_flush")
    def flush(session: Session, _context: Any, _instances: Any) -> None:
        if not (session.new or session.dirty or session.deleted):
            return
        # An async session flushes in a greenlet of its own: the caller's frames are its
        # parent's.
        parent = greenlet.getcurrent().parent
        frames = traceback.extract_stack(parent.gr_frame if parent is not None else None)
        ours = [
            f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno}"
            for f in frames
            if "site-packages" not in f.filename and f.filename.startswith(os.getcwd())
        ]
        counts["flush " + " < ".join(reversed(ours[-3:]))] += 1

    def write() -> None:
        lines = [f"{count}\t{what}" for what, count in counts.most_common()]
        output.write_text("\n".join(lines) + "\n")

    atexit.register(write)


def totals(output: Path) -> tuple[int, int]:
    """(statements, flushes that wrote something) in a file ``install`` wrote."""
    statements = flushes = 0
    for line in output.read_text().splitlines():
        count, what = line.split("\t", 1)
        if what.startswith("flush "):
            flushes += int(count)
        else:
            statements += int(count)
    return statements, flushes


if __name__ == "__main__":
    # The checkout being measured, not the one this file is in, provides the bot.
    sys.path.insert(0, os.getcwd())
    install(Path(sys.argv[1]))
    sys.argv = ["borgerdialog", *sys.argv[2:]]
    from bot.cli import main

    main()
