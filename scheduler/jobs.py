"""Housekeeping jobs: redeliver stuck messages, and delete what we no longer need to keep."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.outbox import OutboxDelivery
from storage.models import Lane
from storage.uow import UnitOfWorkFactory

logger = logging.getLogger(__name__)

REDELIVERY_INTERVAL_SECONDS = 60
RETENTION_INTERVAL_MINUTES = 60


async def redeliver_pending(delivery: OutboxDelivery, channels: list[str]) -> int:
    """Retry replies left pending by network errors; return how many chats were served."""
    served = 0
    for channel in channels:
        served += await delivery.deliver_backlog(channel, Lane.REPLY)
    return served


async def purge_expired(
    uow: UnitOfWorkFactory, clock: Callable[[], datetime], retention_days: int
) -> tuple[int, int]:
    """Delete handled inbox records and settled outbox messages past the retention period."""
    cutoff = clock() - timedelta(days=retention_days)
    async with uow() as unit:
        inbox = await unit.inbox.purge_handled_before(cutoff)
        outbox = await unit.outbox.purge_settled_before(cutoff)
        await unit.commit()
    if inbox or outbox:
        logger.info("retention: deleted %d inbox and %d outbox records", inbox, outbox)
    return inbox, outbox


def build_scheduler(
    *,
    uow: UnitOfWorkFactory,
    clock: Callable[[], datetime],
    delivery: OutboxDelivery,
    channels: list[str],
    retention_days: int,
) -> AsyncIOScheduler:
    """Create the scheduler with the housekeeping jobs; the caller starts and stops it."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        redeliver_pending,
        "interval",
        seconds=REDELIVERY_INTERVAL_SECONDS,
        args=[delivery, channels],
        id="redeliver-pending",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        purge_expired,
        "interval",
        minutes=RETENTION_INTERVAL_MINUTES,
        args=[uow, clock, retention_days],
        id="purge-expired",
        max_instances=1,
        coalesce=True,
        next_run_time=clock(),
    )
    return scheduler
