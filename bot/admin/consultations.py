"""The dashboard's consultations: the list, importing a consultation file, and one
consultation's page (its timeline, participation per day, target-group coverage, and the links
and QR codes per channel).

The same rules as the command line, behind a second door: a file is read by the parser of
``borgerdialog consultation import`` and imported by its importer; coverage is what
``consultation show`` reports; links and QR codes are those of ``consultation link``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.dates import format_date

from bot.admin import charts
from bot.admin.kit import PREFIX, DashboardKit, Visitor, as_error, deliver_now
from bot.admin.pages import AdminPages, Panel
from bot.admin.uploads import read_upload_form
from bot.consultations.definition import (
    ConsultationDefinition,
    DefinitionError,
    FileError,
    definition_from_bytes,
    parse_definition,
)
from bot.consultations.deletion import StillOpen, delete_consultation, is_open
from bot.consultations.demo import demo_source
from bot.consultations.files import MAX_DEFINITION_BYTES, size_text
from bot.consultations.importer import (
    IdeasMove,
    ImportReport,
    QuestionsWithAnswers,
    RoundMove,
    Window,
    import_definition,
)
from bot.consultations.progress import local_day, participation_by_day, quota_coverage
from bot.dialogue.core import DialogueCore
from bot.links import qr_svg, reachable_only_here
from handlers.context import Texts
from handlers.events import Phrase, record_id
from handlers.moderation.cards import moment_text
from handlers.questionnaire import Span, delete_due, phase_state, pick, span_of
from handlers.questions.registry import kind_of
from storage.models import Consultation, ConsultationFile, Round
from storage.moderation import CONSULTATION_DELETED
from storage.repositories import KeptFile
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

BASE = f"{PREFIX}/consultations"
STATES = ("open", "upcoming", "closed")
CHANNEL_NAMES = {
    "web": "admin.consultations.channel.web",
    "telegram": "admin.consultations.channel.telegram",
    "whatsapp": "admin.consultations.channel.whatsapp",
    "messenger": "admin.consultations.channel.messenger",
}
SVG = "image/svg+xml"
# The fields of a consultation file an import reports as changed, in the reader's words.
FIELD_NAMES = {
    "languages": "admin.consultations.import.field.languages",
    "title": "admin.consultations.import.field.title",
    "purpose": "admin.consultations.import.field.purpose",
    "basis": "admin.consultations.import.field.basis",
    "target_group": "admin.consultations.import.field.target_group",
    "citizen_role": "admin.consultations.import.field.citizen_role",
    "organiser": "admin.consultations.import.field.organiser",
    "results": "admin.consultations.import.field.results",
    "moderation": "admin.consultations.import.field.moderation",
    "ideas": "admin.consultations.import.field.ideas",
    "rounds": "admin.consultations.import.field.rounds",
    "questions": "admin.consultations.import.field.questions",
}
# The annotated example consultation (the demo's file), to download or to start from.
EXAMPLE = f"{BASE}/example.yaml"
EXAMPLE_NAME = "eksempel-friluftsliv.yaml"

# The links of a consultation by channel, as the running application knows them.
ConsultationLinks = Callable[[str], dict[str, str]]


def _move_line(
    t: Texts,
    keys: tuple[str, str, str],
    before: Window | None,
    after: Window | None,
    zone: ZoneInfo,
    **named: Any,
) -> str:
    """A round's or the ideas phase's times after an import against those before, by the texts
    for one that came, one that went, and one that moved (``keys``, in that order)."""

    def times(window: Window) -> dict[str, str]:
        opens, closes = window
        return {"opens": moment_text(t, opens, zone), "closes": moment_text(t, closes, zone)}

    added, dropped, moved = keys
    if before is None:
        assert after is not None
        return t(added, **named, **times(after))
    was = {f"was_{key}": value for key, value in times(before).items()}
    if after is None:
        return t(dropped, **named, **was)
    return t(moved, **named, **times(after), **was)


@dataclass(frozen=True)
class Listed:
    """A consultation as the list shows it."""

    consultation: Consultation
    state: Span
    today: int
    total: int
    # Closed longer than the installation keeps closed consultations, with people in it.
    delete_due: bool = False

    # A consultation without rounds (from a Pol.is summary) sorts by when it was imported.
    @property
    def opens_at(self) -> datetime:
        phase = self.state.phase
        return phase[0] if phase else self.consultation.created_at

    @property
    def closes_at(self) -> datetime:
        phase = self.state.phase
        return phase[1] if phase else self.consultation.created_at


@dataclass(frozen=True)
class Phase:
    """One stretch of a consultation's timeline: a round or the ideas phase."""

    name: str
    opens_at: datetime
    closes_at: datetime
    state: str  # "closed", "open" or "upcoming"


class ConsultationPages:
    """The consultations area: the list and import, and one page per consultation."""

    def __init__(
        self,
        kit: DashboardKit,
        door: AdminPages,
        links: ConsultationLinks,
        telegram_on: bool,
        core: DialogueCore,
    ) -> None:
        self._kit = kit
        self._core = core
        self._links = links
        self._telegram_on = telegram_on
        # One file read at a time (see import_file): each reading takes the CPU while it runs.
        self._reading = asyncio.Lock()
        door.add_panel("consultations", self.panel)

    def add_routes(self, app: web.Application) -> None:
        self._kit.add_section("consultations", BASE, "admin.nav.consultations")
        app.router.add_get(BASE, self.list_page)
        app.router.add_post(BASE, self.import_file)
        # Before "/{slug}": a slug has no dot, so the two can never mean the same address.
        app.router.add_get(EXAMPLE, self.example_file)
        app.router.add_get(BASE + "/{slug}", self.consultation_page)
        app.router.add_get(BASE + r"/{slug}/files/{file:\d{1,9}}", self.kept_file)
        app.router.add_post(BASE + "/{slug}/delete", self.delete)
        app.router.add_get(BASE + "/{slug}/qr/{channel}.svg", self.qr_code)
        app.router.add_get(BASE + "/{slug}/chart/participation.svg", self.participation_chart)

    # -- the list and the import ---------------------------------------------------------------

    async def list_page(self, request: web.Request) -> web.Response:
        """Every consultation, grouped open / upcoming / closed, and the import form.

        ``?start=example`` fills the form with the example file, so a first consultation can
        be written by changing one that works rather than from memory; ``?edit=SLUG`` with that
        consultation's newest kept file, to change it.
        """
        visitor = await self._kit.require(request, "consultations")
        if "deleted" in request.query:
            slug = request.query["deleted"]
            async with self._kit.uow.read() as uow:
                gone = await uow.consultations.by_slug(slug) is None
            # Said only of a consultation that is not there: a link cannot claim one deleted.
            deleted = (
                visitor.texts("admin.consultations.delete.done", slug=slug[:40]) if gone else None
            )
            return await self._list(request, visitor, {"deleted": deleted})
        if "edit" in request.query:
            return await self._list(request, visitor, await self._editing(request, visitor))
        started = request.query.get("start") == "example"
        return await self._list(request, visitor, {"source": demo_source()} if started else {})

    async def _editing(self, request: web.Request, visitor: Visitor) -> dict[str, Any]:
        """The import form's fill to change a consultation: its newest file, said whose."""
        t = visitor.texts
        slug = request.query["edit"]
        async with self._kit.uow.read() as uow:
            consultation = await uow.consultations.by_slug(slug)
            kept = await uow.consultations.file(consultation.id) if consultation else None
        if consultation is None or kept is None:
            # A link from an older page, or a consultation that came from Pol.is.
            return {"problem": t("admin.consultations.import.no_file", slug=slug)}
        return {"source": kept.source, **self._binding(visitor, consultation, kept)}

    def _binding(
        self, visitor: Visitor, consultation: Consultation, kept: ConsultationFile | KeptFile
    ) -> dict[str, Any]:
        """What ties the import form to the consultation being edited and the version it
        started from: the banner, and the fields that come back with the form."""
        t = visitor.texts
        editing = t(
            "admin.consultations.import.editing",
            title=pick(consultation.title, t.language),
            when=moment_text(t, kept.imported_at, self._kit.settings.zone),
        )
        return {"editing": editing, "edit_slug": consultation.slug, "based_on": kept.id}

    async def kept_file(self, request: web.Request) -> web.Response:
        """A consultation's file as it was imported, as a download named by slug and time (to the
        second: two versions imported within a minute keep names of their own)."""
        kit = self._kit
        visitor = await kit.require(request, "consultations")
        async with kit.uow.read() as uow:
            consultation = await self._consultation(request, visitor, uow)
            kept = await uow.consultations.file(consultation.id, int(request.match_info["file"]))
        if kept is None:
            raise kit.not_found(request, visitor)
        stamp = kept.imported_at.astimezone(kit.settings.zone).strftime("%Y-%m-%d-%H%M%S")
        return web.Response(
            text=kept.source,
            content_type="application/yaml",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{consultation.slug}-{stamp}.yaml"',
                "Cache-Control": "no-store",
            },
        )

    async def example_file(self, request: web.Request) -> web.Response:
        """The annotated example consultation file, as a download."""
        await self._kit.require(request, "consultations")
        return web.Response(
            text=demo_source(),
            content_type="application/yaml",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{EXAMPLE_NAME}"'},
        )

    async def import_file(self, request: web.Request) -> web.Response:
        """Import an uploaded or pasted consultation file, as ``consultation import`` does."""
        kit = self._kit
        visitor = await kit.require(request, "consultations")
        t = visitor.texts
        limit = size_text(MAX_DEFINITION_BYTES)
        form = await read_upload_form(request, MAX_DEFINITION_BYTES)
        # Checked by hand, not with kit.form: that reads the body whole, within the 64 KiB every
        # request is allowed; a consultation file may be as large as the command line takes.
        if form.too_large is None and not kit.token_matches(
            "session", visitor.token, form.fields.get("csrf")
        ):
            raise as_error(kit.refusal(request))
        # A browser sends a text field's lines ended by CR LF whatever the author wrote: the
        # text is kept as written, so a file edited here stays comparable with its upload.
        source = form.fields.get("source", "").replace("\r\n", "\n")
        uploaded = form.files.get("file")
        force = form.fields.get("force") == "yes"
        kept = {"source": source, "force": force}
        if form.too_large is not None:
            # Nothing is done: without the whole form, not even its token could be checked.
            message = t("admin.consultations.import.too_large", limit=limit)
            return await self._list(request, visitor, {**kept, "problem": message}, status=413)
        edit_slug = form.fields.get("editing", "")
        based_on = record_id(form.fields.get("based_on", ""))
        # The "edit" link fills the text box; a file chosen while it still holds that text
        # untouched is the file meant.
        if (
            uploaded is not None
            and edit_slug
            and await self._untouched(edit_slug, based_on, source)
        ):
            source, kept = "", {**kept, "source": ""}
        if (uploaded is not None and source.strip()) or (uploaded is None and not source.strip()):
            message = t(
                "admin.consultations.import.both"
                if source.strip()
                else "admin.consultations.import.nothing"
            )
            context = {**kept, **await self._bound(visitor, edit_slug, based_on)}
            return await self._list(request, visitor, {**context, "problem": message}, status=400)
        zone = kit.settings.zone
        try:
            if uploaded is None and len(source.encode()) > MAX_DEFINITION_BYTES:
                raise DefinitionError(
                    [FileError(None, "(file)", Phrase("mistake.file.too_large", limit=limit))]
                )
            # In a thread, one at a time: PyYAML reads a file of the limit's size (1 MiB) in
            # tens of seconds of pure Python, during which the event loop, every citizen's chat
            # and the health check stood still.
            async with self._reading:
                if uploaded is not None:
                    definition = await asyncio.to_thread(definition_from_bytes, uploaded, zone)
                else:
                    definition = await asyncio.to_thread(parse_definition, source, zone)
        except DefinitionError as error:
            # The command line's lines ("line 12: rounds[0].closes: must be after opens") in the
            # visitor's language: one set of messages, wherever a file is checked.
            # With its line, when it has one: the page leads from the mistake to that line.
            mistakes = [(mistake.line, mistake.read(visitor.texts)) for mistake in error.errors]
            bound = await self._bound(visitor, edit_slug, based_on)
            context = {**kept, **bound, "mistakes": mistakes}
            return await self._list(request, visitor, context, status=400)
        checking = form.fields.get("action") == "check"
        conflict: dict[str, Any] | None = None
        try:
            async with kit.uow() as uow:
                if edit_slug:
                    conflict = await self._edit_conflict(
                        uow, visitor, definition, edit_slug, based_on
                    )
                if conflict is None:
                    report, binding = await self._import(
                        uow, visitor, definition, force, edit_slug, checking=checking
                    )
                # A check leaves without committing: the unit's end rolls the import back.
        except QuestionsWithAnswers as refusal:
            questions = ", ".join(
                t.n("admin.consultations.import.question_answers", count, question=key)
                for key, count in refusal.counts.items()
            )
            message = t("admin.consultations.import.needs_force", questions=questions)
            context = {**kept, **await self._bound(visitor, edit_slug, based_on)}
            return await self._list(request, visitor, {**context, "problem": message}, status=409)
        if conflict is not None:
            return await self._list(request, visitor, {**kept, **conflict}, status=409)
        if checking:
            # The file's text in the form (an uploaded one too), for "Import" to take as it is.
            checked = self._report(visitor, definition, report, checking=True)
            context = {"checked": checked, "source": definition.source, "force": force}
            bound = await self._bound(visitor, edit_slug, based_on)
            return await self._list(request, visitor, {**context, **bound})
        logger.info(
            "consultation %s imported from the dashboard by %s",
            definition.slug,
            kit.pseudonym(visitor.account),
        )
        imported = self._report(visitor, definition, report)
        if uploaded is not None:
            return await self._list(request, visitor, {"imported": imported})
        # Pasted text stays in the form, to correct at once what the import's report shows;
        # the consultation's page has the kept file for later.
        context = {"imported": imported, "source": source, **binding}
        return await self._list(request, visitor, context)

    async def _import(
        self,
        uow: UnitOfWork,
        visitor: Visitor,
        definition: ConsultationDefinition,
        force: bool,
        edit_slug: str,
        *,
        checking: bool,
    ) -> tuple[ImportReport, dict[str, Any]]:
        """Import in the unit (committed unless checking); the report, and the form's tie to
        the consultation at the version just written when it was being edited."""
        kit = self._kit
        report = await import_definition(uow, definition, kit.clock(), force=force)
        consultation = await uow.consultations.by_slug(definition.slug)
        assert consultation is not None
        files = await uow.consultations.files(consultation.id)
        binding = self._binding(visitor, consultation, files[0]) if edit_slug and files else {}
        if not checking:
            await kit.audit(
                uow,
                visitor.account,
                "consultation_imported",
                consultation=definition.slug,
                after="created" if report.created else "updated",
            )
            await uow.commit()
        return report, binding

    async def _edit_conflict(
        self,
        uow: UnitOfWork,
        visitor: Visitor,
        definition: ConsultationDefinition,
        edit_slug: str,
        based_on: int | None,
    ) -> dict[str, Any] | None:
        """Why a file edited from a consultation's kept one may not be imported as it is:
        it names another consultation, or someone imported a newer version meanwhile. The
        form comes back so that pressing again imports it anyway (the first time warns)."""
        t = visitor.texts
        edited = await uow.consultations.by_slug(edit_slug)
        if edited is None:
            # Deleted since the form was filled: the next press creates it again, knowingly.
            return {"problem": t("admin.consultations.import.edited_gone", slug=edit_slug)}
        # Two edits of one consultation at once: the second waits here for the first to commit
        # and then finds its version the newest, instead of both passing and the second
        # silently replacing the first (PostgreSQL; SQLite's writing units go one at a time).
        await uow.consultations.lock(edited.id)
        newest = await uow.consultations.file(edited.id)
        if newest is None:
            return None
        title = pick(edited.title, t.language)
        if definition.slug != edit_slug:
            problem = t(
                "admin.consultations.import.other_slug",
                title=title,
                editing=edit_slug,
                slug=definition.slug,
            )
            # Untied: the next press imports the file for the consultation it names.
            return {"problem": problem}
        if newest.id != based_on:
            when = moment_text(t, newest.imported_at, self._kit.settings.zone)
            problem = t("admin.consultations.import.changed_meanwhile", when=when)
            # Tied to the newest: the next press replaces it.
            return {"problem": problem, **self._binding(visitor, edited, newest)}
        return None

    async def _untouched(self, edit_slug: str, based_on: int | None, source: str) -> bool:
        """Whether a text is the kept file the edit began from, as the form was filled."""
        async with self._kit.uow.read() as uow:
            edited = await uow.consultations.by_slug(edit_slug)
            kept = (
                await uow.consultations.file(edited.id, based_on) if edited and based_on else None
            )
        return kept is not None and kept.source.splitlines() == source.splitlines()

    async def _bound(
        self, visitor: Visitor, edit_slug: str, based_on: int | None
    ) -> dict[str, Any]:
        """The form's tie to a consultation being edited, kept through a mistake or a check."""
        if not edit_slug:
            return {}
        async with self._kit.uow.read() as uow:
            edited = await uow.consultations.by_slug(edit_slug)
            files = await uow.consultations.files(edited.id) if edited is not None else []
        started = next((kept for kept in files if kept.id == based_on), None)
        if edited is None or started is None:
            return {}
        return self._binding(visitor, edited, started)

    async def _list(
        self,
        request: web.Request,
        visitor: Visitor,
        context: Mapping[str, Any],
        *,
        status: int = 200,
    ) -> web.Response:
        kit = self._kit
        now = kit.clock()
        zone = kit.settings.zone
        async with kit.uow.read() as uow:
            listed = await self._listed(uow, now)
        groups = {state: [i for i in listed if i.state.status == state] for state in STATES}
        # Open ones by how soon they close, upcoming by how soon they open, closed newest first.
        groups["open"].sort(key=lambda i: i.closes_at)
        groups["upcoming"].sort(key=lambda i: i.opens_at)
        groups["closed"].sort(key=lambda i: i.closes_at, reverse=True)
        t = visitor.texts
        page = {
            "groups": [(state, groups[state]) for state in STATES],
            "delete_due": [item for item in groups["closed"] if item.delete_due],
            # Only who may delete is sent to the page's delete section (others have none).
            "delete_anchor": "#delete-heading" if visitor.may("delete_consultations") else "",
            "delete_reminder_days": kit.settings.delete_reminder_days,
            "title_of": lambda c: pick(c.title, t.language),
            "when": lambda moment: moment_text(t, moment, zone),
            "base": BASE,
            "example": EXAMPLE,
            "limit": size_text(MAX_DEFINITION_BYTES),
            "source": "",
            "force": False,
            "problem": None,
            "mistakes": [],
            "imported": None,
            "checked": None,
            "editing": None,
            "deleted": None,
            "edit_slug": "",
            "based_on": None,
            "none_yet": not listed,
            "today": local_day(now, zone),
            **context,
        }
        return kit.render(request, visitor, "consultations/list.html", page, status=status)

    async def _listed(self, uow: UnitOfWork, now: datetime) -> list[Listed]:
        zone = self._kit.settings.zone
        today = local_day(now, zone)
        consultations = await uow.consultations.all()
        consents = await uow.participations.consent_times([c.id for c in consultations])
        after_days = self._kit.settings.delete_reminder_days
        listed = []
        for consultation in consultations:
            times = [moment for owner, moment in consents if owner == consultation.id]
            span = span_of(consultation, await uow.consultations.rounds(consultation.id), now)
            due = False
            if span.status == "closed":
                participations, _ = await uow.participations.count_in(consultation.id)
                due = delete_due(consultation, span, participations, now, after_days)
            listed.append(
                Listed(
                    consultation,
                    span,
                    sum(1 for moment in times if local_day(moment, zone) == today),
                    len(times),
                    due,
                )
            )
        return listed

    def _report(
        self,
        visitor: Visitor,
        definition: ConsultationDefinition,
        report: ImportReport,
        *,
        checking: bool = False,
    ) -> dict[str, Any]:
        """What an import did (or, checking, would do), as the command line tells it, in the
        reader's language."""
        t = visitor.texts
        lines = []
        if report.changed:
            # In the reader's words, with the file's own name to find it by.
            fields = ", ".join(f"{t(FIELD_NAMES[name])} ({name})" for name in report.changed)
            lines.append(t("admin.consultations.import.changed", fields=fields))
        if report.reworded:
            asked = {q.key: pick(q.text, t.language) for q in definition.questions}
            reworded = ", ".join(f"»{asked[key]}« ({key})" for key in report.reworded)
            lines.append(t("admin.consultations.import.reworded", keys=reworded))
        zone = self._kit.settings.zone
        for move in report.rounds_moved:
            lines.append(self._round_line(t, move, zone))
        if report.ideas_moved is not None:
            lines.append(self._ideas_line(t, report.ideas_moved, zone))
        if report.added:
            lines.append(t("admin.consultations.import.added", keys=", ".join(report.added)))
        # Checking, the lines say what an import would do: nothing has happened yet.
        keys = (
            (
                "admin.consultations.import.archived.would",
                "admin.consultations.import.removed.would",
                "admin.consultations.import.plan_change.would",
                "admin.consultations.import.automatic_posts.would",
            )
            if checking
            else (
                "admin.consultations.import.archived",
                "admin.consultations.import.removed",
                "admin.consultations.import.plan_change",
                "admin.consultations.import.automatic_posts",
            )
        )
        archived, removed, plan_change, automatic_posts = keys
        for question, count in report.archived.items():
            lines.append(t(archived, key=question, count=count))
        if report.removed:
            lines.append(t(removed, keys=", ".join(report.removed)))
        for change in report.plan_changes:
            lines.append(t(plan_change, change=change.read(t)))
        if report.automatic_posts:
            lines.append(t.n(automatic_posts, report.automatic_posts))
        figures = {
            "title": pick(definition.title, t.language),
            "slug": definition.slug,
            "questions": t.n(
                "admin.consultations.import.questions_count", len(definition.questions)
            ),
            "rounds": t.n("admin.consultations.import.rounds_count", len(definition.rounds)),
        }
        if report.changes_nothing:
            key = (
                "admin.consultations.import.unchanged_check"
                if checking
                else "admin.consultations.import.unchanged"
            )
            # Said instead of "updated: ...", which would read as if something had changed.
            return {"slug": definition.slug, "summary": t(key, **figures), "lines": lines}
        if checking:
            summary = (
                t("admin.consultations.import.checked_created", **figures)
                if report.created
                else t("admin.consultations.import.checked_updated", **figures)
            )
        else:
            summary = (
                t("admin.consultations.import.created", **figures)
                if report.created
                else t("admin.consultations.import.updated", **figures)
            )
        return {"slug": definition.slug, "summary": summary, "lines": lines}

    @staticmethod
    def _round_line(t: Texts, move: RoundMove, zone: ZoneInfo) -> str:
        """A round's new times against its old ones."""
        keys = (
            "admin.consultations.import.round_added",
            "admin.consultations.import.round_dropped",
            "admin.consultations.import.round_moved",
        )
        return _move_line(t, keys, move.before, move.after, zone, number=move.number)

    @staticmethod
    def _ideas_line(t: Texts, move: IdeasMove, zone: ZoneInfo) -> str:
        """The ideas phase's new times against its old ones."""
        keys = (
            "admin.consultations.import.ideas_added",
            "admin.consultations.import.ideas_dropped",
            "admin.consultations.import.ideas_moved",
        )
        return _move_line(t, keys, move.before, move.after, zone)

    # -- one consultation ------------------------------------------------------------------------

    async def consultation_page(self, request: web.Request) -> web.Response:
        """One consultation: timeline, participation per day, coverage, links and QR codes."""
        visitor = await self._kit.require(request, "consultations")
        return await self._consultation_page(request, visitor)

    async def _consultation_page(
        self, request: web.Request, visitor: Visitor, *, delete_problem: str | None = None
    ) -> web.Response:
        kit = self._kit
        t = visitor.texts
        zone = kit.settings.zone
        now = kit.clock()
        async with kit.uow.read() as uow:
            consultation = await self._consultation(request, visitor, uow)
            rounds = await uow.consultations.rounds(consultation.id)
            days = await self._days(uow, consultation, rounds, now)
            coverage = await quota_coverage(uow, consultation)
            files = await uow.consultations.files(consultation.id)
            participations, answers = await uow.participations.count_in(consultation.id)
            statements, votes = await uow.ideas.count_in(consultation.id)
            forgotten = await uow.participations.count_only_in(consultation.id)
        quotas = [
            {
                "question": pick(quota.question.text, t.language) if quota.question else "",
                "key": quota.question_key,
                "option": (
                    kind_of(quota.question).option_label(quota.question, quota.option, t)
                    if quota.question
                    else quota.option
                ),
                "minimum": quota.minimum,
                "reached": quota.reached,
                "met": quota.met,
            }
            for quota in coverage
        ]
        links = self._links(consultation.slug)
        span = span_of(consultation, rounds, now)
        page = {
            "consultation": consultation,
            "title": pick(consultation.title, t.language),
            "description": pick(consultation.target_group.get("description") or {}, t.language),
            "state": span.status,
            "delete_due": delete_due(
                consultation, span, participations, now, kit.settings.delete_reminder_days
            ),
            "delete_reminder_days": kit.settings.delete_reminder_days,
            "phases": self._phases(visitor, consultation, rounds, now),
            "when": lambda moment: moment_text(t, moment, zone),
            "days": [(self._day(visitor, day), count) for day, count in days],
            "today": sum(count for day, count in days if day == local_day(now, zone)),
            "total": sum(count for _, count in days),
            "quotas": quotas,
            "links": [(channel, CHANNEL_NAMES[channel], link) for channel, link in links.items()],
            "telegram_waiting": self._telegram_on and "telegram" not in links,
            "web_link_local": reachable_only_here(kit.settings),
            "base": f"{BASE}/{consultation.slug}",
            "files": files,
            "edit": f"{BASE}?edit={consultation.slug}#source",
            "may_delete": visitor.may("delete_consultations"),
            "deletable": not (participations and is_open(consultation, list(rounds), now)),
            "participations": participations,
            "answers": answers,
            "statements": statements,
            "votes": votes,
            "forgotten": forgotten,
            "delete_problem": delete_problem,
        }
        status = 400 if delete_problem else 200
        return kit.render(request, visitor, "consultations/consultation.html", page, status=status)

    async def delete(self, request: web.Request) -> web.Response:
        """Delete a consultation with its citizens' contributions, once the admin confirmed it
        by ticking the box and typing its slug; refused while people take part in it."""
        kit = self._kit
        visitor = await kit.require(request, "delete_consultations")
        form = await kit.form(request, visitor)
        t = visitor.texts
        async with kit.uow() as uow:
            consultation = await self._consultation(request, visitor, uow)
            slug = consultation.slug
            problem = None
            if form.get("confirm") != "yes" or str(form.get("slug", "")).strip() != slug:
                problem = t("admin.consultations.delete.unconfirmed", slug=slug)
            else:
                try:
                    report = await delete_consultation(
                        uow, consultation, kit.clock(), kit.catalogs.texts(kit.default_language)
                    )
                except StillOpen:
                    problem = t("admin.consultations.delete.open")
                else:
                    await kit.audit(
                        uow,
                        visitor.account,
                        CONSULTATION_DELETED,
                        consultation=slug,
                        reason=report.counts_code,
                    )
                    await uow.commit()
        if problem is not None:
            return await self._consultation_page(request, visitor, delete_problem=problem)
        logger.info(
            "consultation %s deleted from the dashboard by %s", slug, kit.pseudonym(visitor.account)
        )
        # The moderators' cards of its contributions lose their text now, not within a minute.
        await deliver_now(self._core, report.chats)
        # To the list by its address: reloading it must not post the deletion again.
        raise web.HTTPSeeOther(f"{BASE}?{urlencode({'deleted': slug})}")

    async def qr_code(self, request: web.Request) -> web.Response:
        """The poster-size QR code of a consultation's link in one channel, as an SVG image."""
        kit = self._kit
        visitor = await kit.require(request, "consultations")
        async with kit.uow.read() as uow:
            consultation = await self._consultation(request, visitor, uow)
        link = self._links(consultation.slug).get(request.match_info["channel"])
        if link is None:
            raise self._kit.not_found(request, visitor)
        return web.Response(
            body=qr_svg(link),
            content_type=SVG,
            headers={"Cache-Control": "no-store"},
        )

    async def participation_chart(self, request: web.Request) -> web.Response:
        """Participation per day as a bar chart (the page has the same figures as a table)."""
        kit = self._kit
        visitor = await kit.require(request, "consultations")
        t = visitor.texts
        async with kit.uow.read() as uow:
            consultation = await self._consultation(request, visitor, uow)
            rounds = await uow.consultations.rounds(consultation.id)
            days = await self._days(uow, consultation, rounds, kit.clock())
        svg = await charts.draw(
            charts.bar_chart_svg,
            [self._day(visitor, day) for day, _ in days],
            [count for _, count in days],
            t("admin.consultations.participation.chart_title"),
            y_label=t("admin.consultations.participation.new"),
        )
        return charts.svg_response(svg)

    # -- helpers ---------------------------------------------------------------------------------

    async def _consultation(
        self, request: web.Request, visitor: Visitor, uow: UnitOfWork
    ) -> Consultation:
        consultation = await uow.consultations.by_slug(request.match_info["slug"])
        if consultation is None:
            raise self._kit.not_found(request, visitor)
        return consultation

    async def _days(
        self, uow: UnitOfWork, consultation: Consultation, rounds: Sequence[Round], now: datetime
    ) -> list[tuple[date, int]]:
        """New participants per day, from the first opening (or consent) to today or the end."""
        zone = self._kit.settings.zone
        times = [moment for _, moment in await uow.participations.consent_times([consultation.id])]
        starts = [r.opens_at for r in rounds] + times
        ends = [r.closes_at for r in rounds] + times
        if consultation.ideas_opens_at and consultation.ideas_closes_at:
            starts.append(consultation.ideas_opens_at)
            ends.append(consultation.ideas_closes_at)
        if not starts:
            return []
        first = local_day(min(starts), zone)
        last = min(local_day(max(ends), zone), local_day(now, zone))
        return participation_by_day(times, first, last, zone)

    def _day(self, visitor: Visitor, day: date) -> str:
        t = visitor.texts
        return str(format_date(day, t("admin.consultations.day_format"), locale=t.language))

    def _phases(
        self, visitor: Visitor, consultation: Consultation, rounds: Sequence[Round], now: datetime
    ) -> list[Phase]:
        t = visitor.texts
        phases = [
            Phase(
                pick(r.name, t.language) or t("admin.consultations.timeline.round", number=index),
                r.opens_at,
                r.closes_at,
                phase_state(r.opens_at, r.closes_at, now),
            )
            for index, r in enumerate(rounds, 1)
        ]
        if consultation.ideas_opens_at and consultation.ideas_closes_at:
            phases.append(
                Phase(
                    t("admin.consultations.timeline.ideas"),
                    consultation.ideas_opens_at,
                    consultation.ideas_closes_at,
                    phase_state(consultation.ideas_opens_at, consultation.ideas_closes_at, now),
                )
            )
        return sorted(phases, key=lambda p: (p.opens_at, p.closes_at))

    # -- the overview ----------------------------------------------------------------------------

    async def panel(self, uow: UnitOfWork, visitor: Visitor) -> Panel:
        """The overview's box: how many are open and upcoming, and how many took part today."""
        t = visitor.texts
        listed = await self._listed(uow, self._kit.clock())
        if not listed:
            # A new installation: say where the first consultation comes from.
            return Panel(t("admin.nav.consultations"), BASE, (t("admin.consultations.panel.none"),))
        count = {state: sum(i.state.status == state for i in listed) for state in STATES}
        lines: tuple[str, ...] = (
            t.n("admin.consultations.panel.open", count["open"]),
            t.n("admin.consultations.panel.upcoming", count["upcoming"]),
            t.n("admin.consultations.participation.today", sum(i.today for i in listed)),
        )
        due = sum(i.delete_due for i in listed)
        if due:
            days = self._kit.settings.delete_reminder_days
            lines += (t.n("admin.consultations.panel.delete_due", due, days=days),)
        return Panel(t("admin.nav.consultations"), BASE, lines)
