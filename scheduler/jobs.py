"""Housekeeping jobs: redeliver stuck messages, and delete what we no longer need to keep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.dialogue.health import HealthBoard
from bot.dialogue.outbox import OutboxDelivery
from handlers.context import ModerationDesk, Texts, language_of
from handlers.events import ChatAddress, Reply
from handlers.ideas.groups import compute_groups
from handlers.ideas.rules import with_own_statements
from handlers.ideas.voting import new_statements_notice
from handlers.moderation.desk import digest
from handlers.questionnaire import due_for_deletion, pick
from scheduler.publishing import Publisher
from storage.database import is_transient
from storage.models import Lane
from storage.moderation import DELETE_REMINDED
from storage.uow import UnitOfWork, UnitOfWorkFactory

logger = logging.getLogger(__name__)

REDELIVERY_INTERVAL_SECONDS = 60
# Several processes: how often each looks for events and replies another process left behind
# (killed before it applied or sent them), and how old they must be to count as left behind.
STALE_CHECK_SECONDS = 5
STALE_AFTER = timedelta(seconds=15)
# Sends a moderation digest's text to the dashboard's moderators (by e-mail), in a unit of work.
MailModerators = Callable[[UnitOfWork, str], Awaitable[None]]
DIGEST_CHECK_INTERVAL_SECONDS = 60
NOTICE_INTERVAL_SECONDS = 60
RETENTION_INTERVAL_MINUTES = 60
JOB_STOP_TIMEOUT_SECONDS = 30.0
# A job's database fault is logged once but holds /healthz for no time of its own: the health
# check's own read and write probes report the database while it is away, and a job that runs
# hourly could otherwise keep a recovered bot "degraded" until its next run.
JOB_FAULT_SECONDS = 0.0
# How long the transcript of a web visitor who has not consented is kept after they go quiet.
UNCONSENTED_IDLE = timedelta(days=1)
# How often the staff chat is asked to delete the consultations due (see remind_staff_to_delete).
DELETE_REMINDER_EVERY = timedelta(days=7)
# Who the audit trail names for what the timed jobs do by themselves.
SCHEDULER_ACTOR = "scheduler"
# Quiet chats forgotten by one hourly run, in one unit of work: a first run after an upgrade
# works through a backlog of them in a few hours instead of one long transaction.
QUIET_CHATS_A_RUN = 500


async def redeliver_pending(delivery: OutboxDelivery, channels: list[str]) -> int:
    """Retry replies left pending by network errors; return how many chats were served."""
    served = 0
    for channel in channels:
        served += await delivery.deliver_backlog(channel, Lane.REPLY)
    return served


async def finish_left_behind(
    finish_stale: Callable[[timedelta], Awaitable[int]],
    delivery: OutboxDelivery,
    channels: list[str],
    clock: Callable[[], datetime],
) -> int:
    """Apply events and send replies pending longer than a live process leaves them.

    With several processes a killed one restarts nowhere: what it stored and had not applied,
    or queued and had not sent, is finished by any of the others. Return the events applied.
    """
    applied = await finish_stale(STALE_AFTER)
    cutoff = clock() - STALE_AFTER
    for channel in channels:
        await delivery.deliver_backlog(channel, Lane.REPLY, queued_before=cutoff)
    return applied


async def purge_expired(
    uow: UnitOfWorkFactory, clock: Callable[[], datetime], retention_days: int
) -> tuple[int, int, int, int]:
    """Delete what is past its keeping time; return (inbox, outbox, transcript, chat) counts.

    Handled and failed inbox records and settled outbox messages after the retention period;
    the web transcripts of visitors who went idle without consenting after a day; the chats of
    people who never said yes or no to a consultation and have been quiet for the retention
    period, as at /forget (nothing of theirs serves a purpose any more: no answer, no audience).
    """
    now = clock()
    cutoff = now - timedelta(days=retention_days)
    async with uow() as unit:
        inbox = await unit.inbox.purge_handled_before(cutoff)
        outbox = await unit.outbox.purge_settled_before(cutoff)
        transcripts = await unit.web_messages.purge_unconsented(now - UNCONSENTED_IDLE)
        quiet = await unit.participants.forget_quiet(cutoff, QUIET_CHATS_A_RUN)
        await unit.commit()
    if inbox or outbox or transcripts or quiet:
        logger.info(
            "retention: deleted %d inbox records, %d outbox messages, %d unconsented web "
            "messages, %d quiet chats that never took part",
            inbox,
            outbox,
            transcripts,
            quiet,
        )
    return inbox, outbox, transcripts, quiet


async def remind_staff_to_delete(
    uow: UnitOfWorkFactory,
    clock: Callable[[], datetime],
    delivery: OutboxDelivery,
    staff_chat: ChatAddress | None,
    texts: Callable[[str | None], Texts],
    after_days: int,
) -> bool:
    """Ask the staff chat, once a week while any is due, to delete the consultations closed
    longer than ``after_days`` that still hold data about citizens (``delete_due``); True if
    it asked. Each one asked about goes in the audit trail, which is also what says when the
    chat was last asked (so a restart does not ask again)."""
    if staff_chat is None:
        return False
    now = clock()
    async with uow() as unit:
        if await unit.moderation.logged_since(DELETE_REMINDED, now - DELETE_REMINDER_EVERY):
            return False
        due = await due_for_deletion(unit, now, after_days)
        if not due:
            return False
        t = texts(None)
        slugs = ", ".join(consultation.slug for consultation in due)
        reminder = Reply(t.n("staff.delete_due", len(due), days=after_days, slugs=slugs))
        await unit.outbox.add(staff_chat.channel, staff_chat.chat_id, reminder.to_payload(), now)
        for consultation in due:
            await unit.moderation.log(
                item_id=None,
                consultation=consultation.slug,
                event=DELETE_REMINDED,
                actor=SCHEDULER_ACTOR,
                author="",
                at=now,
            )
        await unit.commit()
    await delivery.deliver_chat(staff_chat.channel, staff_chat.chat_id)
    logger.info("asked the staff chat to delete %d closed consultations", len(due))
    return True


async def send_moderation_digest(
    uow: UnitOfWorkFactory,
    clock: Callable[[], datetime],
    delivery: OutboxDelivery,
    desk: ModerationDesk,
    texts: Callable[[str | None], Texts],
    mail_moderators: MailModerators | None = None,
) -> bool:
    """Remind moderators of items waiting too long; True if a digest went out.

    The moderator chat gets it through the outbox; the dashboard's moderators by e-mail, sent
    before the items are marked as reminded of, so a failed send is tried again next time.
    """
    if desk.chat is None and mail_moderators is None:
        return False
    now = clock()
    async with uow() as unit:
        reminder = await digest(unit, texts(None), desk, now)
        if reminder is None:
            return False
        if desk.chat is not None:
            await unit.outbox.add(desk.chat.channel, desk.chat.chat_id, reminder.to_payload(), now)
        if mail_moderators is not None:
            await mail_moderators(unit, reminder.text)
        await unit.commit()
    if desk.chat is not None:
        await delivery.deliver_chat(desk.chat.channel, desk.chat.chat_id)
    return True


async def send_statement_notices(
    uow: UnitOfWorkFactory,
    clock: Callable[[], datetime],
    delivery: OutboxDelivery,
    texts: Callable[[str | None], Texts],
) -> int:
    """Tell citizens who asked that there are new statements to vote on; once per request."""
    now = clock()
    chats: set[tuple[str, str]] = set()
    async with uow() as unit:
        for participation, participant, count in await unit.ideas.to_notify(now):
            # One message per request: asking again is one tap on the "no more" message.
            participation.notify_statements_at = None
            if participant.unreachable_at is not None or participant.stopped_at is not None:
                continue
            consultation = await unit.consultations.get(participation.consultation_id)
            assert consultation is not None
            t = texts(language_of(participant))
            notice = new_statements_notice(
                t, participation.id, pick(consultation.title, t.language), count
            )
            await unit.outbox.add(
                participant.channel, participant.chat_id, notice.to_payload(), now
            )
            chats.add((participant.channel, participant.chat_id))
        await unit.commit()
    for channel, chat_id in chats:
        await delivery.deliver_chat(channel, chat_id)
    if chats:
        logger.info("told %d citizens of new statements", len(chats))
    return len(chats)


async def votes_for_groups(unit: UnitOfWork, consultation_id: int) -> list[tuple[int, int, int]]:
    """The votes opinion groups are computed from: (participation, statement, value), with each
    author agreeing with their own visible statements."""
    authored = [
        (s.participation_id, s.id)
        for s in await unit.ideas.statements(consultation_id, visible_only=True)
        if s.participation_id is not None
    ]
    return with_own_statements(await unit.ideas.current_votes(consultation_id), authored)


async def refresh_opinion_groups(
    uow: UnitOfWorkFactory, clock: Callable[[], datetime], *, only: str | None = None
) -> list[str]:
    """Recompute the opinion groups of consultations with new votes; return their slugs.

    The computation runs in a worker thread, so replies to citizens never wait for it.
    """
    refreshed: list[str] = []
    async with uow() as unit:
        consultations = [
            c
            for c in await unit.consultations.all()
            if (c.ideas_opens_at or await unit.ideas.count_vote_events(c.id))
            and only in (None, c.slug)
        ]
    for consultation in consultations:
        async with uow() as unit:
            events = await unit.ideas.count_vote_events(consultation.id)
            stored = await unit.ideas.groups(consultation.id)
            if stored is not None and stored.vote_events_seen == events:
                continue
            votes = await votes_for_groups(unit, consultation.id)
        model = await asyncio.to_thread(compute_groups, votes)
        async with uow() as unit:
            await unit.ideas.save_groups(
                consultation.id, model.to_document() if model else {}, events, clock()
            )
            await unit.commit()
        refreshed.append(consultation.slug)
    return refreshed


class Housekeeping:
    """The scheduler with the housekeeping jobs; stopping it lets running jobs finish.

    ``timed`` picks the jobs: the timed work (the plan, retention, digests, notices, opinion
    groups), which only the leader of several processes runs, or the redelivery of replies (and,
    given ``finish_stale``, what a killed process left behind), which every process runs.

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
        timed: bool,
        publisher: Publisher | None = None,
        plan_check_seconds: int = 10,
        groups_minutes: int = 5,
        health: HealthBoard | None = None,
        finish_stale: Callable[[timedelta], Awaitable[int]] | None = None,
        mail_moderators: MailModerators | None = None,
        staff_chat: ChatAddress | None = None,
        delete_reminder_days: int = 180,
    ) -> None:
        self._running: set[asyncio.Task[object]] = set()
        self._health = health or HealthBoard()
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        # APScheduler only wakes the jobs, on the machine's clock; what is due, and how late is
        # too late, the jobs decide from the database and the application's clock.
        wall_now = datetime.now(UTC)
        if not timed:
            self._scheduler.add_job(
                self._tracked(redeliver_pending),
                "interval",
                seconds=REDELIVERY_INTERVAL_SECONDS,
                args=[delivery, channels],
                id="redeliver-pending",
                max_instances=1,
                coalesce=True,
            )
            if finish_stale is not None:
                self._scheduler.add_job(
                    self._tracked(finish_left_behind),
                    "interval",
                    seconds=STALE_CHECK_SECONDS,
                    args=[finish_stale, delivery, channels, clock],
                    id="finish-left-behind",
                    max_instances=1,
                    coalesce=True,
                )
            return
        if publisher is not None:
            self._scheduler.add_job(
                self._tracked(publisher.publish_due),
                "interval",
                seconds=plan_check_seconds,
                id="publish-plan",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=wall_now,
            )
        self._scheduler.add_job(
            self._tracked(purge_expired),
            "interval",
            minutes=RETENTION_INTERVAL_MINUTES,
            args=[uow, clock, retention_days],
            id="purge-expired",
            max_instances=1,
            coalesce=True,
            next_run_time=wall_now,
        )

        if staff_chat is not None:
            self._scheduler.add_job(
                self._tracked(remind_staff_to_delete),
                "interval",
                minutes=RETENTION_INTERVAL_MINUTES,
                args=[uow, clock, delivery, staff_chat, texts, delete_reminder_days],
                id="remind-staff-to-delete",
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.add_job(
            self._tracked(send_moderation_digest),
            "interval",
            seconds=DIGEST_CHECK_INTERVAL_SECONDS,
            args=[uow, clock, delivery, moderation, texts, mail_moderators],
            id="moderation-digest",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(
            self._tracked(send_statement_notices),
            "interval",
            seconds=NOTICE_INTERVAL_SECONDS,
            args=[uow, clock, delivery, texts],
            id="statement-notices",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(
            self._tracked(refresh_opinion_groups),
            "interval",
            minutes=groups_minutes,
            args=[uow, clock],
            id="opinion-groups",
            max_instances=1,
            coalesce=True,
            next_run_time=wall_now,
        )

    def _tracked(
        self, job: Callable[..., Coroutine[Any, Any, object]]
    ) -> Callable[..., Coroutine[Any, Any, None]]:
        part = f"job {job.__name__}"

        async def run(*args: Any) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job(*args)
            except Exception as error:
                if not is_transient(error):
                    raise  # APScheduler logs it with its traceback
                # Every run fails alike while the database is away: said once, not per run.
                reason = f"database unavailable ({type(error).__name__})"
                self._health.fault(part, reason, lasting=JOB_FAULT_SECONDS)
            else:
                self._health.clear(part)
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
