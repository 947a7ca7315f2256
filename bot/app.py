"""The composition root: the one place that builds and wires every part from settings."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.admin.audit import AuditPages
from bot.admin.consultations import ConsultationPages
from bot.admin.kit import DashboardKit
from bot.admin.moderation import ModerationPages
from bot.admin.notices import ModeratorMail
from bot.admin.pages import AdminPages
from bot.admin.plan import PlanPages
from bot.admin.results import ResultsPages
from bot.admin.staff_pages import StaffPages
from bot.channels.email.links import UnsubscribeLinks
from bot.channels.email.pages import EmailPages
from bot.channels.email.sender import EmailChannel
from bot.channels.messenger.channel import MessengerChannel
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.webchat.channel import WebChatChannel
from bot.channels.webchat.identity import CookieSigner, load_or_create_secret
from bot.channels.webchat.sharing import Sharing
from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.config import Settings
from bot.dialogue.core import DialogueCore
from bot.dialogue.health import HealthBoard
from bot.dialogue.i18n import Catalogs, make_language_detector, make_language_identifier
from bot.dialogue.outbox import OutboxDelivery
from bot.links import channel_links
from bot.web import WebServer, make_web_app, pages_for_missing
from bot.web_security import ADMIN_PREFIX, security_headers
from handlers.context import ModerationDesk
from handlers.email import OrganisationWithEmail
from handlers.events import ChatAddress
from handlers.screening.offensive_model import OffensiveModel
from handlers.screening.rules import Screener, WordLists
from scheduler.broadcast import HEALTH_PART as BULK_HEALTH_PART
from scheduler.broadcast import BulkSender
from scheduler.jobs import Housekeeping
from scheduler.leader import Leadership, Role
from scheduler.publishing import Publisher, PublishingSettings
from storage.advisory import ChatDeliveryLocks, DeliveryOutcomes
from storage.database import (
    create_engine,
    create_session_factory,
    is_sqlite,
    is_transient,
    ping,
    redacted_database_url,
    write_probe,
)
from storage.definitions import DefinitionCache
from storage.migrate import prepare_schema
from storage.models import Lane
from storage.uow import UnitOfWorkFactory

logger = logging.getLogger(__name__)

HEALTH_DB_TIMEOUT_SECONDS = 3.0
# Objects allocated between two young collections of the garbage collector while serving;
# Python's default (700) is sized for small scripts (see prepare_collector_for_serving).
YOUNG_COLLECTION_THRESHOLD = 20_000
# This process's row in health_probes (one per process once several share a database).
PROBE_NAME = f"{socket.gethostname()[:40]}:{os.getpid()}"


def utc_now() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def prepare_collector_for_serving() -> None:
    """Keep Python's cycle collector off what was built at start, once the process serves.

    The libraries, catalogs, word lists and language models built at start are some 160,000
    objects that live as long as the process, and every full collection went through them
    again; with 700 allocations between young collections, a burst of citizens (thousands of
    updates in flight, each some hundred objects) set off one every few updates. Together that
    was 15 % of the bot's CPU in the burst benchmark (README, "Performance"). Frozen, what
    exists now is left to reference counting alone; the objects of updates, which mostly die
    young, are collected after 20,000 allocations instead. Only for a serving process: a test
    session starts many apps in one process and should not keep its earlier tests' cycles.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)


def installation_secret(settings: Settings) -> bytes:
    """The one secret cookies, links and pseudonyms are keyed from: set, or kept in data_dir."""
    if settings.web_secret is not None:
        return settings.web_secret.get_secret_value().encode()
    return load_or_create_secret(settings.data_dir)


def pseudonym_key(secret: bytes) -> bytes:
    """The key of staff, moderator and account pseudonyms: the same in chats and dashboard."""
    return hmac.digest(secret, b"staff and moderator pseudonyms", "sha256")


def moderation_desk(settings: Settings) -> ModerationDesk:
    """Where moderators work: the Telegram moderator chat, when one is configured."""
    chat = None
    if settings.telegram_enabled and settings.moderator_chat_id is not None:
        chat = ChatAddress(TelegramChannel.channel, str(settings.moderator_chat_id))
    return ModerationDesk(chat, settings.moderation_digest_minutes)


def telegram_chat(settings: Settings, chat_id: int | None) -> ChatAddress | None:
    """A configured Telegram chat (staff, public channel), when Telegram is on."""
    if not settings.telegram_enabled or chat_id is None:
        return None
    return ChatAddress(TelegramChannel.channel, str(chat_id))


def build_core(
    settings: Settings,
    uow: UnitOfWorkFactory,
    catalogs: Catalogs,
    delivery: OutboxDelivery,
    clock: Callable[[], datetime],
    secret: bytes,
    health: HealthBoard,
    *,
    several_processes: bool = False,
) -> DialogueCore:
    """The dialogue core as the settings configure it (the flow tests build theirs here too)."""
    return DialogueCore(
        uow=uow,
        catalogs=catalogs,
        detect_language=make_language_detector(settings.language_priors),
        organisation=OrganisationWithEmail(
            name=settings.organisation_name,
            privacy_contact=settings.privacy_contact,
            retention_days=settings.inbox_retention_days,
            email=settings.email_enabled,
        ),
        clock=clock,
        delivery=delivery,
        zone=settings.zone,
        screener=Screener(
            WordLists.load(settings.screening_dir),
            make_language_identifier(settings.language_priors),
            offensive_model=OffensiveModel.load(),
            on_screened=delivery.metrics.screened,
        ),
        moderation=moderation_desk(settings),
        staff_chat=telegram_chat(settings, settings.staff_chat_id),
        health=health,
        pseudonym_key=pseudonym_key(secret),
        metrics=delivery.metrics,
        several_processes=several_processes,
        whatsapp_enabled=settings.whatsapp_enabled,
    )


class BorgerDialog:
    """The running application: storage, dialogue core, channels, scheduler and web server."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        # Tests hand in a clock they control; everything that reads the time reads this one.
        self.clock = clock
        self.engine: AsyncEngine | None = None
        self.core: DialogueCore | None = None
        self.telegram: TelegramChannel | None = None
        self.webchat: WebChatChannel | None = None
        self.dashboard: DashboardKit | None = None
        self.email: EmailChannel | None = None
        self.whatsapp: WhatsAppChannel | None = None
        self.messenger: MessengerChannel | None = None
        self.uow: UnitOfWorkFactory | None = None
        # Every process redelivers its own replies; only the leader runs the timed work.
        self._redelivery: Housekeeping | None = None
        self._timed_work: Housekeeping | None = None
        self.leadership: Leadership | None = None
        self.publisher: Publisher | None = None
        self.bulk: BulkSender | None = None
        self._delivery: OutboxDelivery | None = None
        self._delivery_locks: ChatDeliveryLocks | None = None
        self._delivery_outcomes: DeliveryOutcomes | None = None
        self._channels: list[str] = []
        self._web: WebServer | None = None
        self.health_board = HealthBoard()
        self._write_probe: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Build and start every part; on failure, stop what was started and re-raise."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings = self.settings
        self.engine = create_engine(settings.database_url)
        await prepare_schema(self.engine, settings.database_url)
        uow = self.uow = UnitOfWorkFactory(
            create_session_factory(self.engine),
            create_session_factory(self.engine, read_only=True),
            DefinitionCache(),
        )
        catalogs = Catalogs(settings.default_language)
        # PostgreSQL may be shared by several processes (SQLite's run refuses a second one): a
        # chat's events and replies then take their turn across processes, not only in this one.
        several_processes = not is_sqlite(settings.database_url)
        if several_processes:
            self._delivery_locks = ChatDeliveryLocks(settings.database_url)
            self._delivery_outcomes = DeliveryOutcomes(settings.database_url)
        delivery = self._delivery = OutboxDelivery(
            uow,
            self.clock,
            shared_locks=self._delivery_locks,
            outcomes=self._delivery_outcomes,
        )
        secret = installation_secret(settings)
        self.core = build_core(
            settings,
            uow,
            catalogs,
            delivery,
            self.clock,
            secret,
            self.health_board,
            several_processes=several_processes,
        )
        # Several processes share a PostgreSQL; a citizen's tab may be on another than the reply.
        sharing = (
            None
            if is_sqlite(settings.database_url)
            else Sharing.for_database(settings.database_url)
        )
        self.webchat = WebChatChannel(
            settings, self.core, uow, catalogs, CookieSigner(secret), self.clock, sharing
        )
        web_app = make_web_app(self.health)
        web_app.router.add_get("/metrics", self.metrics_page)
        web_app.middlewares.append(security_headers(settings))
        web_app.middlewares.append(pages_for_missing(catalogs.texts, ADMIN_PREFIX))
        self.webchat.add_routes(web_app)
        self.dashboard = self._add_dashboard(web_app, uow, catalogs, secret)
        # The pages work without SMTP too: an unsubscribe link keeps working if e-mail is off.
        links = UnsubscribeLinks(
            hmac.digest(secret, b"e-mail unsubscribe links", "sha256"), settings.public_base_url
        )
        EmailPages(uow, self.core.texts, links, self.clock).add_routes(web_app)
        if settings.email_enabled:
            self.email = EmailChannel(settings, uow, self.core.texts, links, self.clock)
            delivery.register(self.email)
            self.email.start()
        if settings.telegram_enabled:
            self.telegram = TelegramChannel(settings, self.core, catalogs)
            # Its webhook route (in webhook mode) must be added before the server starts.
            self.telegram.add_routes(web_app)
        if settings.whatsapp_enabled:
            # Off unless configured: Meta sees every message of a citizen who writes there.
            self.whatsapp = WhatsAppChannel(settings, self.core, uow, catalogs, self.clock)
            self.whatsapp.add_routes(web_app)
        if settings.messenger_enabled:
            # Off unless configured: Meta (Facebook) sees every message of a citizen there.
            self.messenger = MessengerChannel(settings, self.core, uow, self.clock)
            self.messenger.add_routes(web_app)
        self._web = WebServer(web_app, settings.http_host, settings.http_port)
        await self._web.start()
        await self.webchat.start()
        if self.telegram is not None:
            await self.telegram.start()
        if self.whatsapp is not None:
            await self.whatsapp.start()
        if self.messenger is not None:
            await self.messenger.start()
        channels = [self.webchat.channel] + ([self.telegram.channel] if self.telegram else [])
        channels += [self.whatsapp.channel] if self.whatsapp else []
        channels += [self.messenger.channel] if self.messenger else []
        channels += [self.email.channel] if self.email else []
        self._channels = channels
        self.publisher = Publisher(
            uow=uow,
            clock=self.clock,
            texts_in=self.core.texts,
            settings=PublishingSettings(
                zone=settings.zone,
                late_window=timedelta(minutes=settings.late_window_minutes),
                public_chat=telegram_chat(settings, settings.public_channel_id),
                staff_chat=telegram_chat(settings, settings.staff_chat_id),
                paid_broadcast=settings.paid_broadcast,
            ),
            link=self.consultation_link,
            channels=lambda: channels,
            deliver_chat=delivery.deliver_chat,
            image_limit=lambda name: (
                sender.limits.max_image_bytes if (sender := delivery.sender(name)) else None
            ),
        )
        self._redelivery = self._housekeeping(timed=False)
        self._redelivery.start()
        self.leadership = Leadership.for_database(
            settings.database_url, lead=self._lead, follow=self._follow
        )
        await self.leadership.start()

    def _housekeeping(self, *, timed: bool) -> Housekeeping:
        assert self.uow is not None
        assert self._delivery is not None
        assert self.core is not None
        return Housekeeping(
            uow=self.uow,
            clock=self.clock,
            delivery=self._delivery,
            publisher=self.publisher,
            plan_check_seconds=self.settings.plan_check_seconds,
            channels=self._channels,
            retention_days=self.settings.inbox_retention_days,
            moderation=self.core.moderation,
            texts=self.core.texts,
            groups_minutes=self.settings.opinion_groups_minutes,
            health=self.health_board,
            timed=timed,
            finish_stale=self.core.finish_stale if self._delivery_locks is not None else None,
            # Moderators who work in the dashboard hear of waiting contributions by e-mail.
            mail_moderators=(
                ModeratorMail(self.settings, self.core.texts(None), self.clock)
                if self.settings.email_enabled
                else None
            ),
            staff_chat=telegram_chat(self.settings, self.settings.staff_chat_id),
            delete_reminder_days=self.settings.delete_reminder_days,
        )

    async def _lead(self) -> None:
        """Start the timed work: this process is (now) the leader."""
        assert self.uow is not None
        assert self._delivery is not None
        assert self.publisher is not None
        channels = self._channels
        self.bulk = BulkSender(
            uow=self.uow,
            clock=self.clock,
            sender=self._delivery.sender,
            channels=lambda: channels,
            lease=timedelta(seconds=self.settings.bulk_lease_seconds),
            on_settled=self.publisher.report_progress,
            health=self.health_board,
            metrics=self._delivery.metrics,
        )
        self.publisher.wake_sender = self.bulk.wake
        self.bulk.start()
        self._timed_work = self._housekeeping(timed=True)
        self._timed_work.start()

    async def _follow(self) -> None:
        """Stop the timed work (letting what runs finish): another process may lead now."""
        if self.publisher is not None:
            self.publisher.wake_sender = lambda: None
        if self._timed_work is not None:
            await self._timed_work.stop()
            self._timed_work = None
        if self.bulk is not None:
            await self.bulk.stop()
            self.bulk = None
        # A fault of a part this process no longer runs is not this process's to report.
        self.health_board.clear(BULK_HEALTH_PART)

    async def stop(self) -> None:
        """Stop in reverse order: no new input first, in-flight work finished, then storage."""
        if self.core is not None:
            self.core.close()
        if self.leadership is not None:
            # Stops the timed work first, then frees the lock for another process.
            await self.leadership.stop()
            self.leadership = None
        if self._redelivery is not None:
            await self._redelivery.stop()
            self._redelivery = None
        if self.telegram is not None:
            await self.telegram.stop()
        if self.whatsapp is not None:
            await self.whatsapp.stop()
            self.whatsapp = None
        if self.messenger is not None:
            await self.messenger.stop()
            self.messenger = None
        if self.webchat is not None:
            await self.webchat.stop()
        if self.email is not None:
            await self.email.stop()
            self.email = None
        if self._web is not None:
            await self._web.stop()
            self._web = None
        if self.core is not None:
            # After the channels: what their last events queued for other chats.
            await self.core.finish_deliveries()
        if self._write_probe is not None:
            await asyncio.gather(self._write_probe, return_exceptions=True)
        if self._delivery_locks is not None:
            await self._delivery_locks.close()
            self._delivery_locks = None
        if self._delivery_outcomes is not None:
            await self._delivery_outcomes.close()
            self._delivery_outcomes = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    def _add_dashboard(
        self, web_app: web.Application, uow: UnitOfWorkFactory, catalogs: Catalogs, secret: bytes
    ) -> DashboardKit:
        """The staff dashboard under /admin: its door, then each part, then the fallback."""
        settings = self.settings
        assert self.core is not None
        dashboard = DashboardKit(settings, uow, catalogs, self.clock, secret, pseudonym_key(secret))
        dashboard.setup(web_app)
        dashboard_door = AdminPages(dashboard, settings.trusted_proxy)
        dashboard_door.add_routes(web_app)
        # In the navigation's order: a consultation's work first, the admins' pages last.
        ConsultationPages(
            dashboard, dashboard_door, self.consultation_links, settings.telegram_enabled, self.core
        ).add_routes(web_app)
        moderation_pages = ModerationPages(dashboard, self.core)
        moderation_pages.add_routes(web_app)
        dashboard_door.add_panel("moderation", moderation_pages.panel)
        plan_pages = PlanPages(dashboard, self.core.texts, self.consultation_link)
        plan_pages.add_routes(web_app)
        dashboard_door.add_panel("plan", plan_pages.panel)
        ResultsPages(dashboard, self.core).add_routes(web_app)
        StaffPages(dashboard).add_routes(web_app)
        AuditPages(dashboard).add_routes(web_app)
        dashboard_door.add_fallback(web_app)
        return dashboard

    def consultation_links(self, slug: str) -> dict[str, str]:
        """The links that open a consultation, by channel (Telegram's once it is connected)."""
        username = self.telegram.username if self.telegram is not None else None
        return channel_links(self.settings, slug, username)

    def consultation_link(self, channel: str, slug: str) -> str:
        """The link that opens a consultation in a channel, else in the web chat."""
        links = self.consultation_links(slug)
        return links.get(channel, links["web"])

    async def metrics_page(self, _request: web.Request) -> web.Response:
        """The counters in Prometheus's text format, with the outbox backlog read now."""
        assert self._delivery is not None
        assert self.uow is not None
        metrics = self._delivery.metrics
        try:
            async with self.uow.read() as uow:
                pending = await uow.outbox.pending_by_lane()
        except Exception as error:
            if not is_transient(error):
                raise
            # The counters still answer; the backlog keeps its last reading (health says why).
        else:
            for lane in (Lane.REPLY, Lane.BULK):
                metrics.outbox_pending.labels(lane).set(pending.get(lane, 0))
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Report whether the database reads and writes, channel states and parts' faults.

        "ok" when all is well; "degraded" when something fails now that the bot waits out by
        itself, losing nothing (the database is unreachable, writes time out or are refused, a
        loop is retrying); "unhealthy" when it needs an operator (a channel stopped: a refused
        token, polling ended). Only "ok" answers 200.
        """
        database = "ok"
        try:
            assert self.engine is not None
            await asyncio.wait_for(ping(self.engine), HEALTH_DB_TIMEOUT_SECONDS)
        except Exception as exc:
            database = f"unreachable: {type(exc).__name__}"
        writes = await self._probe_writes() if database == "ok" else "not tried"
        channels = {
            "telegram": self.telegram.state if self.telegram else "disabled",
            "web": self.webchat.state if self.webchat else "disabled",
        }
        if self.settings.whatsapp_enabled:
            channels["whatsapp"] = self.whatsapp.state if self.whatsapp else "stopped"
        if self.settings.messenger_enabled:
            channels["messenger"] = self.messenger.state if self.messenger else "stopped"
        faults = self.health_board.faults()
        sharing = self.webchat.sharing if self.webchat is not None else None
        if sharing is not None and not sharing.listener.listening:
            # Tabs here miss what other processes send until it listens again (it retries).
            faults = {**faults, "web chat across processes": "not listening; retrying"}
        if any(s.startswith("error") for s in channels.values()):
            status = "unhealthy"
        elif database != "ok" or writes != "ok" or faults:
            status = "degraded"
        else:
            status = "ok"
        role: Role = self.leadership.role if self.leadership is not None else "follower"
        report: dict[str, Any] = {
            "status": status,
            "role": role,
            "database": database,
            "writes": writes,
            "channels": channels,
        }
        if database == "ok":
            report.update(await self._backlogs())
        if faults:
            report["faults"] = faults
        return status == "ok", report

    async def _backlogs(self) -> dict[str, Any]:
        """What waits in the shared database: events to apply (and for how long), messages to send.

        The same in every process on one database: a lag that grows while the processes are
        healthy means too few of them (or a slow database).
        """
        assert self.uow is not None
        try:
            async with self.uow.read() as uow:
                waiting, oldest = await uow.inbox.backlog()
                pending = await uow.outbox.pending_by_lane()
        except Exception as error:
            if not is_transient(error):
                raise
            return {}  # the database check above just answered; the next check will say more
        lag = 0.0 if oldest is None else max(0.0, (self.clock() - oldest).total_seconds())
        return {
            "inbox": {"pending": waiting, "lag_seconds": round(lag, 1)},
            "outbox": {lane: pending.get(lane, 0) for lane in (Lane.REPLY, Lane.BULK)},
        }

    async def _probe_writes(self) -> str:
        """Commit a small write, waiting at most the health timeout for it.

        The probe is never cancelled (a cancelled database call can strand its connection): a
        probe still waiting for a lock is reported as such, and the next check waits for it.
        """
        assert self.engine is not None
        if self._write_probe is None or self._write_probe.done():
            self._write_probe = asyncio.create_task(
                write_probe(self.engine, PROBE_NAME, self.clock()), name="health-write-probe"
            )
        done, _ = await asyncio.wait({self._write_probe}, timeout=HEALTH_DB_TIMEOUT_SECONDS)
        if not done:
            return f"waiting over {HEALTH_DB_TIMEOUT_SECONDS:.0f} s (locked or slow)"
        error = self._write_probe.exception()
        return "ok" if error is None else f"refused: {type(error).__name__}"

    async def run(self, stop: asyncio.Event) -> None:
        """Start, announce where things are, wait for the stop signal, then shut down cleanly."""
        await self.start()
        prepare_collector_for_serving()
        try:
            self._announce()
            await stop.wait()
            logger.info("stopping: finishing updates in flight")
        finally:
            await self.stop()

    def _announce(self) -> None:
        settings = self.settings
        logger.info(
            "borgerdialog is running; web chat at %s/chat; health at %s/healthz; database %s",
            settings.public_base_url,
            settings.public_base_url,
            redacted_database_url(settings.database_url),
        )
        if not settings.telegram_enabled:
            logger.info(
                "Telegram is off. To connect a bot, create one with @BotFather in Telegram and "
                "start again with BORGERDIALOG_TELEGRAM_TOKEN=<the token it gives you>"
            )
