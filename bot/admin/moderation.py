"""The moderation queue in the dashboard: the same queue and decisions as the moderator chat.

What waits is listed oldest first with personal data masked as on the chat's cards; a moderator
may reveal one item's text (the reveal goes to the audit trail) and decide with the chat's own
decision code (``decide_elsewhere``): the first decision wins wherever it is made, the author
hears it the same way, and the item's card in the moderator chat is redrawn as decided.
Every action is a plain form; moderation.js only adds keyboard shortcuts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.admin.kit import PREFIX, DashboardKit, Visitor, deliver_now
from bot.admin.pages import Panel
from bot.dialogue.core import DialogueCore
from handlers import questionnaire as rules
from handlers.context import Texts
from handlers.events import record_id
from handlers.moderation.cards import (
    REASONS,
    ItemView,
    decided_line,
    load_view,
    masked_text,
    moment_text,
    reasons,
)
from handlers.moderation.decision import TAKEN, WITHDRAWN, decide_elsewhere
from handlers.moderation.desk import waited
from storage.models import ItemStatus, ModerationItem
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

AREA = "moderation"
QUEUE = f"{PREFIX}/moderation"
# Items on one page, oldest first; the rest follow as these are decided (as the chat's /queue).
QUEUE_PAGE = 50
# The form's decisions, as the moderator chat's card buttons name them (decision.DECISIONS).
ACTIONS = {"approve": "a", "hide": "h", "rephrase": "p", "block": "B"}
HIDE_WITH_REASON = "w"


@dataclass(frozen=True)
class QueueEntry:
    """One waiting item as the queue page shows it."""

    view: ItemView
    title: str
    question: str | None
    since: str
    since_iso: str
    age: str
    flags: list[str]
    reports: list[tuple[str, int]]
    # The text with personal data masked; None once its author withdrew it.
    masked: str | None
    # The text as written, only on the page that answers this moderator's reveal.
    revealed: str | None
    # Whether there is anything masked to reveal.
    has_personal_data: bool


@dataclass(frozen=True)
class Notice:
    """A line at the top of the page: a notice (done) or an alert (refused, or too late)."""

    text: str
    alert: bool


class ModerationPages:
    """The queue page, the reveal and the decisions under /admin/moderation."""

    def __init__(self, kit: DashboardKit, core: DialogueCore) -> None:
        self._kit = kit
        self._core = core
        self._zone = kit.settings.zone

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(QUEUE, self.queue)
        app.router.add_post(QUEUE + "/{item}/reveal", self.reveal)
        app.router.add_post(QUEUE + "/{item}/decide", self.decide)
        self._kit.add_section(AREA, QUEUE, "admin.nav.moderation")

    # -- the overview's panel --------------------------------------------------------------

    async def panel(self, uow: UnitOfWork, visitor: Visitor) -> Panel:
        """The queue's size and how long the oldest item has waited."""
        t = visitor.texts
        count, oldest = await uow.moderation.queue_size()
        lines = [t.n("admin.moderation.waiting", count)]
        if oldest is not None:
            lines.append(t("admin.moderation.oldest", age=waited(t, self._kit.clock() - oldest)))
        return Panel(t("admin.moderation.title"), QUEUE, tuple(lines))

    # -- pages -------------------------------------------------------------------------------

    async def queue(self, request: web.Request) -> web.Response:
        """What waits, oldest first; after a decision, what became of the item decided."""
        kit = self._kit
        visitor = await kit.require(request, AREA)
        message = None
        decided_id = record_id(request.query.get("decided", ""))
        if decided_id is not None:
            async with kit.uow.read() as uow:
                item = await uow.moderation.get(decided_id)
                if item is not None and item.status != ItemStatus.WAITING:
                    message = Notice(await self._decided_text(uow, visitor.texts, item), False)
        return await self._page(request, visitor, message)

    async def reveal(self, request: web.Request) -> web.Response:
        """Show one item's text unmasked to the moderator who asked, and log that they did."""
        kit = self._kit
        visitor = await kit.require(request, AREA)
        await kit.form(request, visitor)
        t = visitor.texts
        item_id = record_id(request.match_info["item"])
        # A refusal is shown after the unit of work has ended: the page reads in a unit of its
        # own, and one request never holds two of the pool's connections at once.
        refusal: tuple[Notice, int] | None = None
        async with kit.uow() as uow:
            item = await uow.moderation.get(item_id) if item_id is not None else None
            if item is None:
                refusal = Notice(t("admin.moderation.no_item"), True), 404
            elif item.status != ItemStatus.WAITING:
                refusal = Notice(await self._decided_text(uow, t, item), True), 409
            elif (view := await load_view(uow, item)).text is None:
                refusal = Notice(t("moderation.card.withdrawn"), True), 409
            else:
                await kit.audit(
                    uow,
                    visitor.account,
                    "moderation_reveal",
                    consultation=view.consultation.slug,
                    item_id=item.id,
                    author=item.pseudonym,
                )
                await uow.commit()
        if refusal is not None:
            notice, status = refusal
            return await self._page(request, visitor, notice, status=status)
        assert item is not None
        logger.info("moderation item %s revealed to %s", item.id, kit.pseudonym(visitor.account))
        return await self._page(request, visitor, None, revealed=item.id)

    async def decide(self, request: web.Request) -> web.Response:
        """Apply the posted decision once; tell who decided first when someone else did."""
        kit = self._kit
        visitor = await kit.require(request, AREA)
        form = await kit.form(request, visitor)
        t = visitor.texts
        item_id = record_id(request.match_info["item"])
        chosen = str(form.get("decision", ""))
        reason = str(form.get("reason", "")) or None
        if chosen not in ACTIONS or (
            reason is not None and (chosen != "hide" or reason not in REASONS)
        ):
            return await self._page(
                request, visitor, Notice(t("admin.moderation.bad_decision"), True), status=400
            )
        if chosen == "block" and form.get("confirm") != "yes":
            return await self._page(
                request, visitor, Notice(t("admin.moderation.confirm_block"), True), status=400
            )
        action = HIDE_WITH_REASON if reason is not None else ACTIONS[chosen]
        # The audit trail names the account as every dashboard action does: role and pseudonym.
        actor = f"{visitor.account.role} {kit.pseudonym(visitor.account)}"
        now = kit.clock()
        # As in reveal: a refusal is shown once the unit of work has ended.
        refusal: tuple[Notice, int] | None = None
        async with kit.uow() as uow:
            item = await uow.moderation.get(item_id) if item_id is not None else None
            if item is None:
                refusal = Notice(t("admin.moderation.no_item"), True), 404
            else:
                decided = await decide_elsewhere(
                    uow,
                    item,
                    action,
                    reason,
                    # The name the moderator chat's card shows: by whom (pseudonym), and where.
                    by=f"{actor} (dashboard)",
                    actor=actor,
                    now=now,
                    texts_in=self._core.texts,
                    zone=self._zone,
                )
                if decided.outcome == TAKEN:
                    first = await self._decided_text(uow, t, item)
                    refusal = Notice(t("admin.moderation.taken", decided=first), True), 409
                else:
                    await uow.outbox.add_many(
                        [
                            (a.channel, a.chat_id, reply.to_payload())
                            for a, reply in decided.messages
                        ],
                        now,
                    )
                    await uow.commit()
        if refusal is not None:
            notice, status = refusal
            return await self._page(request, visitor, notice, status=status)
        assert item is not None
        logger.info(
            "moderation item %s decided (%s) by %s",
            item.id,
            item.status,
            kit.pseudonym(visitor.account),
        )
        await deliver_now(self._core, {address for address, _ in decided.messages})
        if decided.outcome == WITHDRAWN:
            return await self._page(
                request, visitor, Notice(t("moderation.card.withdrawn"), True), status=409
            )
        raise web.HTTPSeeOther(f"{QUEUE}?decided={item.id}#queue")

    # -- helpers ---------------------------------------------------------------------------

    async def _decided_text(self, uow: UnitOfWork, t: Texts, item: ModerationItem) -> str:
        """Who decided an item (by the audit trail's pseudonym), what, and when."""
        entry = await uow.moderation.decision_entry(item)
        moment = moment_text(t, item.decided_at, self._zone) if item.decided_at else "?"
        line = decided_line(t, item, moment, who=entry.actor if entry is not None else None)
        return t("admin.moderation.item_decided", id=item.id, decided=line)

    async def _page(
        self,
        request: web.Request,
        visitor: Visitor,
        message: Notice | None,
        *,
        revealed: int | None = None,
        status: int = 200,
    ) -> web.Response:
        t = visitor.texts
        now = self._kit.clock()
        async with self._kit.uow.read() as uow:
            count, _oldest = await uow.moderation.queue_size()
            entries = [
                await self._entry(uow, t, item, now, revealed == item.id)
                for item in await uow.moderation.waiting(limit=QUEUE_PAGE)
            ]
        context: dict[str, Any] = {
            "entries": entries,
            "count": count,
            "message": message,
            "reasons": REASONS,
            "queue": QUEUE,
        }
        return self._kit.render(request, visitor, "moderation/queue.html", context, status=status)

    async def _entry(
        self, uow: UnitOfWork, t: Texts, item: ModerationItem, now: datetime, reveal: bool
    ) -> QueueEntry:
        view = await load_view(uow, item)
        question = rules.pick(view.question.text, t.language) if view.question is not None else None
        contribution = view.contribution
        reports = (
            list((await uow.moderation.report_reasons(contribution)).items())
            if item.reports and contribution is not None
            else []
        )
        return QueueEntry(
            view=view,
            title=rules.pick(view.consultation.title, t.language),
            question=question,
            since=moment_text(t, item.created_at, self._zone),
            since_iso=item.created_at.isoformat(),
            age=waited(t, now - item.created_at),
            flags=reasons(t, view.flags),
            reports=reports,
            masked=masked_text(view),
            revealed=view.text if reveal else None,
            has_personal_data=bool(view.personal_data()),
        )
