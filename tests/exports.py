"""Read a consultation's export table from a running app, as the export commands build it."""

from __future__ import annotations

from bot.app import BorgerDialog
from bot.consultations.export import build_table
from storage.database import create_session_factory
from storage.uow import UnitOfWorkFactory
from tests.flows import FlowBot


async def export_rows(app: BorgerDialog | FlowBot, slug: str = "friluftsliv") -> list[dict]:
    assert app.engine is not None
    async with UnitOfWorkFactory(create_session_factory(app.engine))() as uow:
        table = await build_table(uow, slug)
    assert table is not None
    return table.rows
