"""A consultation's results in the dashboard: per question, per statement, the opinion groups as
a map, decisions on statements, and the exports.

The same rules behind a second door: decisions go through ``handlers.ideas.staff.decide`` (as
``borgerdialog ideas decide``), so authors and voters hear them exactly as from the command
line; the downloads are the files ``borgerdialog export`` writes, with pseudonymous ids only.
Every decision and every download is in the audit trail.
"""

from __future__ import annotations

import asyncio
import io
import logging
import zipfile
from collections.abc import Mapping
from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from bot.admin import charts
from bot.admin import results_data as data
from bot.admin.kit import PREFIX, DashboardKit, Visitor, no_store
from bot.consultations.export import RENDERERS, build_table
from bot.consultations.polis import export_polis
from bot.dialogue.core import DialogueCore
from handlers.events import ChatAddress, Reply, record_id
from handlers.ideas.staff import NotShown, StaffError, decide
from handlers.plan.results import gather_results
from handlers.questionnaire import pick
from scheduler.jobs import refresh_opinion_groups
from storage.models import Consultation, Decision
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

AREA = "consultations"
RESULTS = PREFIX + "/consultations/{slug}/results"
# Every format `borgerdialog export` writes; CSV in both of its separators.
EXPORTS = (
    ("csv", ";", "admin.results.export.csv_semicolon"),
    ("csv", ",", "admin.results.export.csv_comma"),
    ("xlsx", ";", "admin.results.export.workbook"),
    ("json", ";", "admin.results.export.programs"),
    ("polis", ";", "admin.results.export.polis"),
)
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "polis": "application/zip",
}
DECISION_CHOICES = {
    Decision.ACCEPTED: "export.decision.accepted",
    Decision.REJECTED: "export.decision.rejected",
    Decision.CONSIDERING: "export.decision.considering",
    Decision.MERGED: "export.decision.merged",
}
REASON_LIMIT = 500


def results_path(slug: str) -> str:
    return RESULTS.format(slug=slug)


class ResultsPages:
    """/admin/consultations/{slug}/results: read, decide, download."""

    def __init__(self, kit: DashboardKit, core: DialogueCore) -> None:
        self._kit = kit
        self._core = core

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(RESULTS, self.page)
        app.router.add_post(RESULTS + "/decision", self.decision)
        app.router.add_get(RESULTS + "/export/{format}", self.export)
        app.router.add_get(RESULTS + "/charts/questions/{key}.svg", self.question_chart)
        app.router.add_get(RESULTS + "/charts/groups.svg", self.groups_chart)
        app.router.add_get(RESULTS + "/charts/statements.svg", self.statements_chart)

    # -- the page ----------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        """The results, with a notice after a decision was recorded."""
        visitor = await self._kit.require(request, AREA)
        slug = request.match_info["slug"]
        # As `borgerdialog ideas groups` does: the groups as of the latest vote (a no-op when
        # nothing changed since the scheduler's last run).
        try:
            await refresh_opinion_groups(self._kit.uow, self._kit.clock, only=slug)
        except IntegrityError:
            # The scheduler stored the first groups at the same moment: those are as good.
            logger.info("opinion groups of %s were being stored already", slug)
        notice = None
        # As the decision's own redirect writes them; the address is anyone's to edit, and
        # str.isdigit() takes "²" (int() then refuses it) and numbers of thousands of digits.
        decided = record_id(request.query.get("decided", ""))
        told_text = request.query.get("told", "")
        told = 0 if told_text == "0" else record_id(told_text)
        if decided is not None and told is not None:
            notice = visitor.texts.n("admin.results.decided", told, number=decided)
        return await self._render(request, visitor, slug, notice=notice)

    async def _render(
        self,
        request: web.Request,
        visitor: Visitor,
        slug: str,
        *,
        notice: str | None = None,
        problem: str | None = None,
        form: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> web.Response:
        kit, t = self._kit, visitor.texts
        async with kit.uow.read() as uow:
            consultation = await self._consultation(request, visitor, uow, slug)
            summary = await gather_results(uow, consultation, self._core.texts, [t.language])
            questions = await data.question_results(uow, consultation, t, kit.settings.zone)
            statements = await data.statement_results(uow, consultation, t)
        path = results_path(slug)
        context: dict[str, Any] = {
            "consultation": consultation,
            "title": pick(consultation.title, t.language),
            "path": path,
            "back": f"{PREFIX}/consultations/{slug}",
            "summary": summary,
            "questions": questions,
            "statements": statements,
            "letters": [group.letter for group in statements.groups],
            "exports": [
                (
                    f"{path}/export/{name}" + ("?delimiter=," if delimiter == "," else ""),
                    label,
                )
                for name, delimiter, label in EXPORTS
            ],
            "decisions": list(DECISION_CHOICES.items()),
            "reason_limit": REASON_LIMIT,
            "notice": notice,
            "problem": problem,
            "form": dict(form or {}),
        }
        return kit.render(request, visitor, "results/page.html", context, status=status)

    async def _consultation(
        self, request: web.Request, visitor: Visitor, uow: UnitOfWork, slug: str
    ) -> Consultation:
        consultation = await uow.consultations.by_slug(slug)
        if consultation is None:
            raise self._kit.not_found(request, visitor)
        return consultation

    # -- decisions ---------------------------------------------------------------------------

    async def decision(self, request: web.Request) -> web.Response:
        """Record a decision on a statement; its author and the voters who asked hear it."""
        kit = self._kit
        visitor = await kit.require(request, AREA)
        posted = await kit.form(request, visitor)
        slug = request.match_info["slug"]
        form = {name: str(posted.get(name, "")) for name in ("number", "decision", "into")}
        form["reason"] = str(posted.get("reason", "")).strip()
        outcome = await self._decide(request, visitor, slug, form)
        if isinstance(outcome, str):
            return await self._render(
                request, visitor, slug, problem=visitor.texts(outcome), form=form, status=400
            )
        # Sent now, as the chat would; what fails here the redelivery job sends later.
        for address in dict.fromkeys(address for address, _ in outcome):
            try:
                await self._core.delivery.deliver_chat(address.channel, address.chat_id)
            except Exception:
                logger.exception("a decision's news waits for redelivery")
        raise web.HTTPSeeOther(
            f"{results_path(slug)}?decided={form['number']}&told={len(outcome)}#decisions"
        )

    async def _decide(
        self, request: web.Request, visitor: Visitor, slug: str, form: dict[str, str]
    ) -> str | list[tuple[ChatAddress, Reply]]:
        """Record the decision the form asks for: the news to send, or the key of a problem."""
        kit = self._kit
        # record_id, not str.isdigit(): "²" and numbers larger than the column crashed here.
        number = record_id(form["number"])
        decision = form["decision"]
        merging = decision == Decision.MERGED
        into = record_id(form["into"]) if merging else None
        if number is None:
            return "admin.results.problem.statement"
        if decision not in DECISION_CHOICES:
            return "admin.results.problem.decision"
        if merging and into is None:
            return "admin.results.problem.into"
        async with kit.uow() as uow:
            consultation = await self._consultation(request, visitor, uow, slug)
            statement = await uow.ideas.by_number(consultation.id, number)
            merged = await uow.ideas.by_number(consultation.id, into) if into else None
            if statement is None or (into is not None and merged is None):
                return "admin.results.problem.statement"
            before = statement.decision
            try:
                messages = await decide(
                    uow,
                    statement,
                    decision,
                    form["reason"] or None,
                    merged,
                    kit.clock(),
                    self._core.texts,
                )
            except NotShown:
                return "admin.results.problem.not_shown"
            except StaffError:
                # decide() says why in the command line's words; the page says it in the
                # reader's language. What is left for it to refuse here: a statement merged
                # into itself, or a reason that is too long.
                if len(form["reason"]) > REASON_LIMIT:
                    return "admin.results.problem.reason"
                return "admin.results.problem.self"
            now = kit.clock()
            for address, reply in messages:
                await uow.outbox.add(address.channel, address.chat_id, reply.to_payload(), now)
            await kit.audit(
                uow,
                visitor.account,
                "statement_decided",
                consultation=slug,
                reason=f"statement {number}",
                before=before,
                after=decision,
            )
            await uow.commit()
        logger.info(
            "statement %d of %s decided (%s) by %s",
            number,
            slug,
            decision,
            kit.pseudonym(visitor.account),
        )
        return messages

    # -- downloads ---------------------------------------------------------------------------

    async def export(self, request: web.Request) -> web.StreamResponse:
        """A file as `borgerdialog export` writes it (Pol.is's folder as a zip), audited."""
        kit = self._kit
        visitor = await kit.require(request, AREA)
        slug, name = request.match_info["slug"], request.match_info["format"]
        delimiter = "," if request.query.get("delimiter") == "," else ";"
        if name not in CONTENT_TYPES:
            raise kit.not_found(request, visitor)
        if name == "polis":
            # Participants who joined since the last export get their ids (numbers) first, in
            # a short unit of its own, which commits them: the export shows them from then on.
            async with kit.uow() as uow:
                consultation = await self._consultation(request, visitor, uow, slug)
                await uow.participations.number_newcomers(consultation.id)
                await uow.commit()
        # Read in a unit that only reads: on SQLite a writing one holds the write lock from its
        # start, and a large export's reading takes seconds, which every chat's writes would
        # wait out. The audit entry is its own short unit afterwards.
        async with kit.uow.read() as uow:
            consultation = await self._consultation(request, visitor, uow, slug)
            if name == "polis":
                url = f"{kit.settings.public_base_url}/chat?c={slug}"
                files, _ = await export_polis(uow, consultation, url)
                make, filename = partial(zipped, files), f"{slug}-polis.zip"
            else:
                table = await build_table(uow, slug)
                assert table is not None
                make = partial(RENDERERS[name], table, kit.settings.zone, delimiter)
                # The two CSV files apart in a downloads folder: the comma one says so.
                filename = f"{slug}-comma.csv" if delimiter == "," else f"{slug}.{name}"
        # Made in a thread from what was read: a large workbook or zip takes a second or more
        # of work that would otherwise hold up every chat this process answers.
        content = await asyncio.to_thread(make)
        async with kit.uow() as uow:
            await kit.audit(uow, visitor.account, "results_exported", consultation=slug, after=name)
            await uow.commit()
        logger.info("%s export of %s by %s", name, slug, kit.pseudonym(visitor.account))
        response = web.Response(
            body=content,
            content_type=CONTENT_TYPES[name].split(";")[0],
            charset="utf-8" if "charset" in CONTENT_TYPES[name] else None,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
        no_store(response)
        return response

    # -- charts ------------------------------------------------------------------------------

    async def question_chart(self, request: web.Request) -> web.Response:
        """A question's bars or histogram as SVG (the page has the same figures as a table)."""
        kit = self._kit
        visitor = await kit.require(request, AREA)
        async with kit.uow.read() as uow:
            consultation = await self._consultation(
                request, visitor, uow, request.match_info["slug"]
            )
            found = await data.question_results(
                uow, consultation, visitor.texts, kit.settings.zone, only=request.match_info["key"]
            )
        if not found or not found[0].chart or not found[0].bars:
            raise kit.not_found(request, visitor)
        result, t = found[0], visitor.texts
        if result.chart == "histogram":
            assert result.numbers is not None
            svg = await charts.draw(
                charts.histogram_svg,
                result.numbers.values,
                result.chart_title,
                bins=result.numbers.edges,
                x_label=t("admin.results.chart.value"),
                y_label=t("admin.results.chart.answers"),
            )
        else:
            svg = await charts.draw(
                charts.bar_chart_svg,
                [bar.label for bar in result.bars],
                [bar.count for bar in result.bars],
                result.chart_title,
                horizontal=True,
                x_label=t("admin.results.chart.answers"),
            )
        return charts.svg_response(svg)

    async def _statement_results(
        self, request: web.Request
    ) -> tuple[Visitor, data.StatementResults]:
        """The visitor (staff) and the consultation's statements as the page shows them."""
        kit = self._kit
        visitor = await kit.require(request, AREA)
        async with kit.uow.read() as uow:
            consultation = await self._consultation(
                request, visitor, uow, request.match_info["slug"]
            )
            return visitor, await data.statement_results(uow, consultation, visitor.texts)

    async def statements_chart(self, request: web.Request) -> web.Response:
        """Each statement's agree, disagree and pass as one bar (the page's table has them)."""
        kit = self._kit
        visitor, statements = await self._statement_results(request)
        t = visitor.texts
        if not statements.rows:
            raise kit.not_found(request, visitor)
        svg = await charts.draw(
            charts.stacked_bar_chart_svg,
            [
                t("admin.results.chart.statement", number=r.statement.number)
                for r in statements.rows
            ],
            {
                t("admin.results.column.agree"): [r.tally.agree for r in statements.rows],
                t("admin.results.column.disagree"): [r.tally.disagree for r in statements.rows],
                t("admin.results.column.pass"): [r.tally.passed for r in statements.rows],
            },
            t("admin.results.statements"),
            x_label=t("admin.results.chart.votes"),
        )
        return charts.svg_response(svg)

    async def groups_chart(self, request: web.Request) -> web.Response:
        """The opinion groups' map: participants as points, by group (colour and marker)."""
        kit = self._kit
        visitor, statements = await self._statement_results(request)
        t = visitor.texts
        if not statements.groups:
            raise kit.not_found(request, visitor)
        points = {
            t("admin.results.group", letter=group.letter): [
                (m.x, m.y) for m in statements.members if m.letter == group.letter
            ]
            for group in statements.groups
        }
        svg = await charts.draw(
            charts.scatter_svg,
            points,
            t("admin.results.groups.chart_title"),
            x_label=t("admin.results.chart.first"),
            y_label=t("admin.results.chart.second"),
        )
        return charts.svg_response(svg)


def zipped(files: Mapping[str, str]) -> bytes:
    """Pol.is's files in one zip, as the folder `borgerdialog export --format polis` writes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content.encode("utf-8"))
    return buffer.getvalue()
