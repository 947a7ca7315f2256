"""Housekeeping jobs: redeliver stuck messages, and delete what we no longer need to keep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.outbox import OutboxDelivery
from handlers.context import ModerationDesk, Texts
from handlers.moderation.desk import digest
from storage.models import Lane
from storage.uow import UnitOfWorkFactory

logger = logging.getLogger(__name__)

REDELIVERY_INTERVAL_SECONDS = 60
DIGEST_CHECK_INTERVAL_SECONDS = 60
RETENTION_INTERVAL_MINUTES = 60
JOB_STOP_TIMEOUT_SECONDS = 30.0


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


async def send_moderation_digest(
    uow: UnitOfWorkFactory,
    clock: Callable[[], datetime],
    delivery: OutboxDelivery,
    desk: ModerationDesk,
    texts: Callable[[str | None], Texts],
) -> bool:
    """Remind the moderator chat of items waiting too long; True if a digest went out."""
    if desk.chat is None:
        return False
    now = clock()
    async with uow() as unit:
        reminder = await digest(unit, texts(None), desk, now)
        if reminder is None:
            return False
        await unit.outbox.add(desk.chat.channel, desk.chat.chat_id, reminder.to_payload(), now)
        await unit.commit()
    await delivery.deliver_chat(desk.chat.channel, desk.chat.chat_id)
    return True


class Housekeeping:
    """The scheduler with the housekeeping jobs; stopping it lets running jobs finish.

    APScheduler's asyncio executor cancels running jobs on shutdown; a job cancelled halfway
    through a query, with the engine disposed under it, can leave a connection that never closes.
    So stopping pauses the scheduler, waits for the jobs already running, and only then shuts down.
    """

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime],
        delivery: OutboxDelivery,
        channels: list[str],
        retention_days: int,
        moderation: ModerationDesk,
        texts: Callable[[str | None], Texts],
    ) -> None:
        self._running: set[asyncio.Task[object]] = set()
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(
            self._tracked(redeliver_pending),
            "interval",
            seconds=REDELIVERY_INTERVAL_SECONDS,
            args=[delivery, channels],
            id="redeliver-pending",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(
            self._tracked(purge_expired),
            "interval",
            minutes=RETENTION_INTERVAL_MINUTES,
            args=[uow, clock, retention_days],
            id="purge-expired",
            max_instances=1,
            coalesce=True,
            next_run_time=clock(),
        )

        self._scheduler.add_job(
            self._tracked(send_moderation_digest),
            "interval",
            seconds=DIGEST_CHECK_INTERVAL_SECONDS,
            args=[uow, clock, delivery, moderation, texts],
            id="moderation-digest",
            max_instances=1,
            coalesce=True,
        )

    def _tracked(
        self, job: Callable[..., Coroutine[Any, Any, object]]
    ) -> Callable[..., Coroutine[Any, Any, None]]:
        async def run(*args: Any) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job(*args)
            finally:
                self._running.discard(task)

        run.__name__ = job.__name__
        return run

    def start(self) -> None:
        """Start waking jobs up (needs a running event loop)."""
        self._scheduler.start()

    async def stop(self) -> None:
        """Start no new job runs, let running ones finish (up to a timeout), then shut down."""
        if not self._scheduler.running:
            return
        self._scheduler.pause()
        if self._running:
            await asyncio.wait(set(self._running), timeout=JOB_STOP_TIMEOUT_SECONDS)
        self._scheduler.shutdown(wait=False)
