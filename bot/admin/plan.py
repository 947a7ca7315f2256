"""The content plan in the dashboard: a week's calendar, adding, editing and cancelling posts,
a preview of what citizens get, a sheet's upload, and a broadcast's progress.

The same rules behind a second door: a post from the form is one row of the content-plan sheet
(``handlers.plan.sheet.read_post``), stored by ``handlers.plan.planning.plan_post`` as the sheet,
the CLI and the staff chat's ``/plan add`` store theirs; the preview is the publisher's own
payload; an upload goes through the CLI's ``plan import`` code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import BodyPartReader, web
from babel.dates import format_date

from bot.admin.kit import PREFIX, DashboardKit, Visitor
from bot.admin.pages import Panel
from bot.config import Settings
from bot.consultations.files import (
    MAX_SHEET_BYTES,
    MAX_SHEET_IMAGE_BYTES,
    FileProblem,
    size_text,
)
from bot.consultations.plan_sheet import image_loader, sheet_rows
from handlers import questionnaire
from handlers.context import Texts
from handlers.events import MAX_IMAGE_BYTES, Phrase, UnreadableText, clean_text
from handlers.moderation.cards import moment_text
from handlers.plan import content, rules
from handlers.plan.content import ConsultationLink, Preview
from handlers.plan.planning import AUTOMATIC, FieldError, phases_of, plan_post
from handlers.plan.rules import Delivery, PlanError
from handlers.plan.sheet import SheetError, read_post, store_sheet
from storage.models import Consultation, PlannedPost, PostKind, PostState
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

PLAN = f"{PREFIX}/plan"
# The form's fields: the content-plan sheet's columns (handlers.plan.sheet.COLUMNS).
FIELDS = (
    "consultation",
    "when",
    "repeat",
    "audience",
    "text_da",
    "text_en",
    "button_da",
    "button_en",
    "button_link",
    "whatsapp_template",
)
# Where a mistake found against the database shows on the form ("" above the form).
FIELD_OF_MISTAKE = {"button": "button_link", "button_da": "button_da", "id": "", "image": ""}
# What an edited post's stored image is called while its row is read again.
KEPT_IMAGE = "image"
# The audiences offered as suggestions; anything the sheet takes may be typed.
SUGGESTED_AUDIENCES = ("channel", "everyone", "participants", "unfinished")
# Each state by a sign as well as a colour and a word: never colour alone.
MARKERS = {
    PostState.PLANNED: "◷",
    PostState.SENDING: "➤",
    PostState.SENT: "✓",
    PostState.FAILED: "✕",
    PostState.SKIPPED: "↷",
    PostState.CANCELLED: "⊘",
}
# What the post's page says after an action (?done=…).
NOTICES = {
    "added": "admin.plan.added",
    "edited": "admin.plan.edited",
    "cancelled": "admin.plan.cancelled",
}
# The preview shows a Telegram citizen's message (the first channel; buttons link into it).
PREVIEW_CHANNEL = "telegram"
WEEK = re.compile(r"(\d{4})-W(\d{1,2})")
UPLOAD_FIELDS = 200  # parts of an upload: a sheet, its images and two small fields
TEXT_SHOWN = 90
IMAGE_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg"}


class UploadTooLarge(Exception):
    """An upload over a limit: the part (its file name, if one) and the limit it is over. The
    form's CSRF token (its first field) is kept, so the refusal is shown only to the form's
    owner."""

    def __init__(self, name: str | None, reason: Phrase, csrf: str | None) -> None:
        super().__init__(reason.key)
        self.name = name
        self.reason = reason
        self.csrf = csrf

    def read(self, t: Texts) -> str:
        """The refusal in ``t``'s language: "kort.png: is larger than 10 MB (the limit)"."""
        reason = self.reason.read(t)
        return f"{self.name}: {reason}" if self.name else reason


@dataclass(frozen=True)
class Week:
    """An ISO week (Monday to Sunday) in the installation's time zone."""

    monday: date

    @classmethod
    def of(cls, day: date) -> Week:
        return cls(day - timedelta(days=day.weekday()))

    @classmethod
    def parse(cls, text: str) -> Week | None:
        """A week written as 2026-W49; None if it is none."""
        match = WEEK.fullmatch(text.strip())
        # The calendar links the weeks either side: in year 1 or 9999 one of them is no date
        # (and ?week=9999-W52 crashed the page), so only years with a week on both sides.
        if match is None or not 1 < int(match[1]) < 9999:
            return None
        try:
            return cls(date.fromisocalendar(int(match[1]), int(match[2]), 1))
        except ValueError:
            return None

    @property
    def label(self) -> str:
        year, number, _ = self.monday.isocalendar()
        return f"{year}-W{number:02d}"

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=n) for n in range(7)]

    def start(self, settings: Settings) -> datetime:
        """Monday 00:00 local, in UTC (a week with a clock change is 167 or 169 hours)."""
        return datetime.combine(self.monday, time(0), tzinfo=settings.zone).astimezone(UTC)

    def end(self, settings: Settings) -> datetime:
        return Week(self.monday + timedelta(days=7)).start(settings)

    def shifted(self, weeks: int) -> Week:
        return Week(self.monday + timedelta(weeks=weeks))


@dataclass(frozen=True)
class PostView:
    """A post as the dashboard shows it, with its times in the installation's zone."""

    post: PlannedPost
    title: str
    day: date
    when: str
    state: str
    marker: str
    text: str
    anchor: str
    audience: str
    consultation: str
    # Why it was skipped, cancelled or partly failed, in the visitor's language ("" if nothing).
    note: str
    delivery: Delivery | None
    # The delivery's figures and sentence, as the progress endpoint answers them.
    progress: dict[str, Any]

    @property
    def editable(self) -> bool:
        return self.post.state == PostState.PLANNED and self.post.kind == PostKind.MESSAGE

    @property
    def cancellable(self) -> bool:
        return self.post.state == PostState.PLANNED


def progress_json(post: PlannedPost, delivery: Delivery | None, t: Texts) -> dict[str, Any]:
    """What the progress endpoint answers and the page shows: the counts and a sentence."""
    delivery = delivery or Delivery(post.recipients, 0, 0, 0, 0)
    return {
        "post": post.id,
        "state": post.state,
        "state_text": t(f"plan.state.{post.state}"),
        "marker": MARKERS.get(post.state, "•"),
        "total": delivery.total,
        "done": delivery.done,
        "sent": delivery.sent,
        "unreachable": delivery.unreachable,
        "failed": delivery.failed,
        "pending": delivery.pending,
        "summary": t(
            "admin.plan.progress",
            done=delivery.done,
            total=delivery.total,
            sent=delivery.sent,
            unreachable=delivery.unreachable,
            failed=delivery.failed,
        ),
    }


class PlanPages:
    """The content plan's pages under /admin/plan (admins and communications staff)."""

    def __init__(
        self,
        kit: DashboardKit,
        texts_in: Callable[[str | None], Texts],
        link: ConsultationLink,
    ) -> None:
        self._kit = kit
        self._texts_in = texts_in
        self._link = link
        self._settings = kit.settings

    def add_routes(self, app: web.Application) -> None:
        self._kit.add_section("plan", PLAN, "admin.nav.plan")
        app.router.add_get(PLAN, self.calendar)
        app.router.add_get(f"{PLAN}/new", self.new_form)
        app.router.add_post(f"{PLAN}/new", self.new_post)
        app.router.add_get(f"{PLAN}/upload", self.upload_form)
        app.router.add_post(f"{PLAN}/upload", self.upload)
        app.router.add_get(PLAN + r"/{post:\d{1,9}}", self.post_page)
        app.router.add_get(PLAN + r"/{post:\d{1,9}}/edit", self.edit_form)
        app.router.add_post(PLAN + r"/{post:\d{1,9}}/edit", self.edit_post)
        app.router.add_post(PLAN + r"/{post:\d{1,9}}/cancel", self.cancel)
        app.router.add_get(PLAN + r"/{post:\d{1,9}}/progress", self.progress)
        app.router.add_get(PLAN + r"/{post:\d{1,9}}/image", self.image)

    # -- the calendar ------------------------------------------------------------------------

    async def calendar(self, request: web.Request) -> web.Response:
        """A week of the plan, Monday to Sunday in local time; each day's posts by time."""
        kit, settings = self._kit, self._settings
        visitor = await kit.require(request, "plan")
        today = kit.clock().astimezone(settings.zone).date()
        asked = request.query.get("week")
        week = Week.parse(asked) if asked else Week.of(today)
        unknown_week = week is None
        if week is None:
            week = Week.of(today)
        async with kit.uow.read() as uow:
            posts = await uow.plan.between(week.start(settings), week.end(settings))
            views = [await self._view(uow, post, visitor.texts) for post in posts]
        t = visitor.texts
        days = [
            {
                "date": day,
                "name": format_date(day, t("admin.plan.format_day"), locale=t.language),
                "today": day == today,
                "posts": [view for view in views if view.day == day],
                "new": f"{PLAN}/new?when={day.isoformat()}+09:00",
            }
            for day in week.days
        ]
        sunday = week.days[-1]
        context = {
            "week": week,
            "week_name": t(
                "admin.plan.week",
                number=week.monday.isocalendar()[1],
                first=format_date(week.monday, t("admin.plan.format_date"), locale=t.language),
                last=format_date(sunday, t("admin.plan.format_date"), locale=t.language),
                year=sunday.year,
            ),
            "days": days,
            "previous": week.shifted(-1).label,
            "next": week.shifted(1).label,
            "this_week": Week.of(today).label,
            "is_this_week": week == Week.of(today),
            "unknown_week": asked if unknown_week else None,
            "zone": settings.timezone,
            "count": len(views),
        }
        status = 400 if unknown_week else 200
        return kit.render(request, visitor, "plan/week.html", context, status=status)

    # -- one post --------------------------------------------------------------------------------

    async def post_page(self, request: web.Request) -> web.Response:
        """A post: when, to whom, its state and progress, what citizens see; edit and cancel."""
        kit = self._kit
        visitor = await kit.require(request, "plan")
        async with kit.uow.read() as uow:
            post = await self._post(uow, request, visitor)
            view = await self._view(uow, post, visitor.texts)
            previews = await content.previews(
                uow, post, self._texts_in, self._settings.zone, self._link, PREVIEW_CHANNEL
            )
        context = {
            "view": view,
            "previews": self._shown(previews),
            "notice": visitor.texts(NOTICES[done])
            if (done := request.query.get("done")) in NOTICES
            else None,
            "message": None,
            "week": Week.of(view.day).label,
            "zone": self._settings.timezone,
        }
        return kit.render(request, visitor, "plan/post.html", context)

    async def progress(self, request: web.Request) -> web.Response:
        """A post's delivery as JSON, for the page's progress to follow a running broadcast."""
        kit = self._kit
        visitor = await kit.require(request, "plan")
        async with kit.uow.read() as uow:
            post = await self._post(uow, request, visitor)
            view = await self._view(uow, post, visitor.texts)
        response = web.json_response(view.progress)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def image(self, request: web.Request) -> web.Response:
        """A post's stored image, for its preview."""
        kit = self._kit
        visitor = await kit.require(request, "plan")
        async with kit.uow.read() as uow:
            post = await self._post(uow, request, visitor)
        image = post.image or b""
        kind = next((k for sig, k in IMAGE_TYPES.items() if image.startswith(sig)), None)
        if kind is None:
            raise kit.not_found(request, visitor)
        return web.Response(
            body=image, content_type=kind, headers={"Cache-Control": "private, no-store"}
        )

    async def cancel(self, request: web.Request) -> web.Response:
        """Cancel a post that has not started, as the CLI and the staff chat do; audited."""
        kit = self._kit
        visitor = await kit.require(request, "plan")
        form = await kit.form(request, visitor)
        async with kit.uow() as uow:
            post = await self._post(uow, request, visitor)
            if form.get("confirm") != "yes":
                # A cancelled post cannot be planned again: the box says so before it happens
                # (the browser asks for it; this is for a form sent without).
                message = visitor.texts("admin.plan.cancel_unconfirmed")
                return await self._post_with_message(
                    request, visitor, uow, post, message, status=400
                )
            if not await uow.plan.cancel(post.id, kit.clock()):
                view = await self._view(uow, post, visitor.texts)
                message = visitor.texts("plan.staff.cannot_cancel", post=post.id, state=view.state)
                return await self._post_with_message(request, visitor, uow, post, message)
            await kit.audit(
                uow,
                visitor.account,
                "plan_post_cancelled",
                consultation=await self._slug(uow, post),
                item_id=post.id,
                before=PostState.PLANNED,
                after=PostState.CANCELLED,
            )
            await uow.commit()
        logger.info(
            "post %s cancelled in the dashboard by %s", post.id, kit.pseudonym(visitor.account)
        )
        raise web.HTTPSeeOther(f"{PLAN}/{post.id}?done=cancelled")

    # -- the form --------------------------------------------------------------------------------

    async def new_form(self, request: web.Request) -> web.Response:
        """An empty form; a day's link from the calendar fills in its date."""
        visitor = await self._kit.require(request, "plan")
        values = {name: "" for name in FIELDS}
        values["when"] = _clean(request.query.get("when", ""))[:40]
        values["consultation"] = _clean(request.query.get("consultation", ""))[:40]
        return await self._form(request, visitor, values, {}, None)

    async def new_post(self, request: web.Request) -> web.Response:
        visitor = await self._kit.require(request, "plan")
        form = await self._kit.form(request, visitor)
        return await self._submit(request, visitor, form, None)

    async def edit_form(self, request: web.Request) -> web.Response:
        """The form filled in with a planned post, written back as staff write it."""
        kit = self._kit
        visitor = await kit.require(request, "plan")
        async with kit.uow.read() as uow:
            post = await self._post(uow, request, visitor)
            if post.state != PostState.PLANNED or post.kind != PostKind.MESSAGE:
                view = await self._view(uow, post, visitor.texts)
                message = (
                    visitor.texts("admin.plan.not_editable", state=view.state)
                    if post.state != PostState.PLANNED
                    else visitor.texts("admin.plan.not_editable_automatic")
                )
                return await self._post_with_message(request, visitor, uow, post, message)
            values = await self._values_of(uow, post, visitor.texts.language)
        return await self._form(request, visitor, values, {}, post)

    async def edit_post(self, request: web.Request) -> web.Response:
        visitor = await self._kit.require(request, "plan")
        form = await self._kit.form(request, visitor)
        return await self._submit(request, visitor, form, int(request.match_info["post"]))

    async def _submit(
        self,
        request: web.Request,
        visitor: Visitor,
        form: Mapping[str, Any],
        post_id: int | None,
    ) -> web.Response:
        """Read the form as a sheet's row, check and store it with the plan's rules; a mistake
        brings the form back as typed, with its message next to its field. "Preview" runs the
        same and stores nothing."""
        kit, settings = self._kit, self._settings
        values = {name: _clean(str(form.get(name, ""))) for name in FIELDS}
        remove_image = form.get("remove_image") == "yes"
        previewing = form.get("action") == "preview"
        mistakes: dict[str, str] = {}
        async with kit.uow() as uow:
            replacing = None
            if post_id is not None:
                replacing = await uow.plan.get_for_update(post_id)
                if replacing is None:
                    raise kit.not_found(request, visitor)
            before = self._local(replacing.due_at) if replacing is not None else None
            kept_image = replacing.image if replacing is not None and not remove_image else None

            def cell(name: str) -> str:
                if name == "image":
                    return KEPT_IMAGE if kept_image else ""
                return values.get(name, "").strip()

            def fail(name: str, message: Phrase) -> None:
                mistakes.setdefault(FIELD_OF_MISTAKE.get(name, name), message.read(visitor.texts))

            def load_image(_name: str) -> bytes:
                assert kept_image is not None
                return kept_image

            draft = read_post(cell, fail, load_image)
            post = None
            if draft is not None:
                try:
                    post, _ = await plan_post(
                        uow,
                        draft,
                        kit.clock(),
                        settings.zone,
                        f"{visitor.account.role} {kit.pseudonym(visitor.account)}",
                        channel_configured=settings.public_channel_id is not None,
                        replacing=replacing,
                    )
                except FieldError as error:
                    fail(error.field, error.phrase)
            if post is None or mistakes:
                return await self._form(
                    request, visitor, values, mistakes, replacing, status=400, uow=uow
                )
            if previewing:
                # Shown from the unsaved post; leaving the unit without commit keeps nothing.
                previews = await content.previews(
                    uow, post, self._texts_in, settings.zone, self._link, PREVIEW_CHANNEL
                )
                return await self._form(
                    request,
                    visitor,
                    values,
                    {},
                    replacing,
                    previews=self._shown(previews),
                    planned_for=self._local(post.due_at),
                    uow=uow,
                )
            await kit.audit(
                uow,
                visitor.account,
                "plan_post_edited" if replacing is not None else "plan_post_added",
                consultation=await self._slug(uow, post),
                item_id=post.id,
                before=before,
                after=self._local(post.due_at),
            )
            await uow.commit()
            post_id = post.id
        logger.info(
            "post %s %s in the dashboard by %s",
            post_id,
            "edited" if replacing is not None else "planned",
            kit.pseudonym(visitor.account),
        )
        raise web.HTTPSeeOther(
            f"{PLAN}/{post_id}?done={'edited' if replacing is not None else 'added'}"
        )

    async def _form(
        self,
        request: web.Request,
        visitor: Visitor,
        values: dict[str, str],
        mistakes: dict[str, str],
        post: PlannedPost | None,
        *,
        status: int = 200,
        previews: list[dict[str, Any]] | None = None,
        planned_for: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> web.Response:
        kit = self._kit
        if uow is None:
            async with kit.uow.read() as reading:
                consultations = await reading.consultations.all()
        else:
            consultations = await uow.consultations.all()
        t = visitor.texts
        context = {
            "values": values,
            "mistakes": mistakes,
            "general": mistakes.get(""),
            "post": post,
            "has_image": bool(post is not None and post.image),
            "consultations": [
                (c.slug, questionnaire.pick(c.title, t.language)) for c in consultations
            ],
            # Each suggestion as the reader writes it ("kanal" on a Danish page).
            "audiences": [
                (
                    rules.describe_audience(rules.parse_audience(a), t.language),
                    t(f"plan.audience.{a}"),
                )
                for a in SUGGESTED_AUDIENCES
            ],
            "whatsapp": self._settings.whatsapp_enabled or bool(values.get("whatsapp_template")),
            "action": f"{PLAN}/{post.id}/edit" if post is not None else f"{PLAN}/new",
            "previews": previews,
            "planned_for": planned_for,
            "zone": self._settings.timezone,
        }
        return kit.render(request, visitor, "plan/form.html", context, status=status)

    async def _values_of(self, uow: UnitOfWork, post: PlannedPost, language: str) -> dict[str, str]:
        """A post's fields as the form (and the sheet) writes them, in the reader's words."""
        button = post.button or {}
        labels = button.get("label") or {}
        link = button.get("url") or (
            f"consultation:{button['consultation']}" if "consultation" in button else ""
        )
        repeat = post.repeat
        return {
            "consultation": await self._slug(uow, post),
            "when": (
                rules.describe_anchor(post.anchor, language)
                if post.anchor
                else self._local(post.due_at)
            ),
            "repeat": _repeat_text(repeat) if repeat else "",
            "audience": rules.describe_audience(post.audience, language),
            "text_da": post.texts.get("da", ""),
            "text_en": post.texts.get("en", ""),
            "button_da": labels.get("da", ""),
            "button_en": labels.get("en", ""),
            "button_link": link,
            "whatsapp_template": post.whatsapp_template or "",
        }

    # -- the sheet ------------------------------------------------------------------------------

    async def upload_form(self, request: web.Request) -> web.Response:
        visitor = await self._kit.require(request, "plan")
        return self._upload_page(request, visitor, {})

    async def upload(self, request: web.Request) -> web.Response:
        """Import a content-plan sheet (with the images it names) as ``plan import`` does:
        every mistake by row and column, and nothing stored while there is one."""
        kit, settings = self._kit, self._settings
        visitor = await kit.require(request, "plan")
        t = visitor.texts
        if not request.content_type.startswith("multipart/"):
            # No form of ours (the page's form sends multipart): reading it as one crashed.
            # Without its parts there is no token to check, so it is refused as a stale form.
            return kit.refusal(request)
        try:
            fields, files = await _read_upload(request)
        except ValueError:
            # A body that is no readable multipart form (no boundary, a broken part): as above.
            return kit.refusal(request)
        except UploadTooLarge as error:
            if not kit.token_matches("session", visitor.token, error.csrf):
                return kit.refusal(request)
            return self._upload_page(request, visitor, {"problem": error.read(t)}, status=413)
        if not kit.token_matches("session", visitor.token, fields.get("csrf")):
            return kit.refusal(request)
        checking = fields.get("dry_run") == "yes"
        sheet = files.pop("sheet", None)
        if sheet is None or not sheet[0]:
            return self._upload_page(
                request, visitor, {"problem": t("admin.plan.upload_missing")}, status=400
            )
        name, data = sheet
        try:
            rows = sheet_rows(name, data)
        except FileProblem as problem:
            shown = f"{name}: {problem.read(t)}"
            return self._upload_page(request, visitor, {"problem": shown, "name": name}, status=400)
        except UnreadableText:
            shown = f"{name}: {t('mistake.file.unreadable_text')}"
            return self._upload_page(request, visitor, {"problem": shown, "name": name}, status=400)
        images = {image_name: content for image_name, content in files.values()}

        def read_image(image_name: str) -> bytes:
            if image_name not in images:
                # Not FileMissing: that says "no image file next to the sheet", the command
                # line's folder; here the image is one the upload did not hold.
                raise FileProblem(Phrase("mistake.file.not_uploaded"))
            return images[image_name]

        async with kit.uow() as uow:
            stored, problems = await store_sheet(
                uow,
                rows,
                image_loader(read_image),
                kit.clock(),
                settings.zone,
                channel_configured=settings.public_channel_id is not None,
            )
            report = [
                {
                    "row": item.row,
                    "post": item.post.id,
                    "created": item.created,
                    "when": self._local(item.post.due_at),
                    "text": questionnaire.shorten(
                        questionnaire.pick(item.post.texts, t.language), TEXT_SHOWN
                    ),
                }
                for item in stored
            ]
            if not problems and not checking:
                await kit.audit(
                    uow,
                    visitor.account,
                    "plan_sheet_imported",
                    reason=f"{sum(i.created for i in stored)} added",
                    after=f"{len(stored)} rows",
                )
                await uow.commit()
                logger.info(
                    "content-plan sheet with %d posts imported in the dashboard by %s",
                    len(stored),
                    kit.pseudonym(visitor.account),
                )
        context: dict[str, Any] = {"name": name, "problems": problems, "checking": checking}
        if not problems:
            context["stored"] = report
        return self._upload_page(request, visitor, context, status=400 if problems else 200)

    def _upload_page(
        self,
        request: web.Request,
        visitor: Visitor,
        context: dict[str, Any],
        *,
        status: int = 200,
    ) -> web.Response:
        shown: dict[str, Any] = {
            "problems": [],
            "problem": None,
            "stored": None,
            "checking": False,
            "name": "",
            "zone": self._settings.timezone,
            **context,
        }
        shown["problems"] = [_problem(p, visitor.texts) for p in shown["problems"]]
        return self._kit.render(request, visitor, "plan/upload.html", shown, status=status)

    # -- the overview's panel ------------------------------------------------------------------

    async def panel(self, uow: UnitOfWork, visitor: Visitor) -> Panel:
        """The next planned post and the posts that failed, for the overview page."""
        t = visitor.texts
        lines: list[str] = []
        upcoming = await uow.plan.listing(states=[PostState.PLANNED], limit=1)
        if upcoming:
            view = await self._view(uow, upcoming[0], t)
            lines.append(
                t("admin.plan.panel_next", post=view.title, when=self._moment(view.post.due_at, t))
            )
        else:
            lines.append(t("admin.plan.panel_nothing"))
        failed = await uow.plan.listing(states=[PostState.FAILED], limit=100)
        if failed:
            lines.append(t.n("admin.plan.panel_failed", len(failed)))
            for post in failed[-3:]:
                view = await self._view(uow, post, t)
                lines.append(f"{view.marker} {view.title} · {self._moment(post.due_at, t)}")
        return Panel(t("admin.plan.title"), PLAN, tuple(lines))

    # -- helpers -------------------------------------------------------------------------------

    def _moment(self, moment: datetime, t: Texts) -> str:
        """A time as people read it ("29. januar 2027 kl. 15:52"); forms keep _local's."""
        return moment_text(t, moment, self._kit.settings.zone)

    async def _post(self, uow: UnitOfWork, request: web.Request, visitor: Visitor) -> PlannedPost:
        post = await uow.plan.get(int(request.match_info["post"]))
        if post is None:
            raise self._kit.not_found(request, visitor)
        return post

    async def _post_with_message(
        self,
        request: web.Request,
        visitor: Visitor,
        uow: UnitOfWork,
        post: PlannedPost,
        message: str,
        status: int = 409,
    ) -> web.Response:
        """The post's page with why an action could not be done (409: it changed meanwhile)."""
        view = await self._view(uow, post, visitor.texts)
        context = {
            "view": view,
            "previews": [],
            "notice": None,
            "message": message,
            "week": Week.of(view.day).label,
            "zone": self._settings.timezone,
        }
        return self._kit.render(request, visitor, "plan/post.html", context, status=status)

    async def _view(self, uow: UnitOfWork, post: PlannedPost, t: Texts) -> PostView:
        consultation: Consultation | None = (
            await uow.consultations.get(post.consultation_id) if post.consultation_id else None
        )
        local = post.due_at.astimezone(self._settings.zone)
        text = questionnaire.pick({k: v for k, v in post.texts.items() if ":" not in k}, t.language)
        delivery = None
        if post.recipients:
            delivery = Delivery.of(post.recipients, await uow.plan.delivery_counts(post.id))
        return PostView(
            post=post,
            title=t(f"plan.kind.{post.kind}") + f" #{post.id}",
            day=local.date(),
            when=local.strftime("%H:%M"),
            state=t(f"plan.state.{post.state}"),
            marker=MARKERS.get(post.state, "•"),
            text=questionnaire.shorten(text.replace("\n", " "), TEXT_SHOWN)
            if text
            else t("admin.plan.written_when_sent"),
            anchor=await self._anchor_text(uow, post, consultation, t),
            audience=rules.describe_audience(post.audience, t.language),
            consultation=questionnaire.pick(consultation.title, t.language) if consultation else "",
            note=rules.note_text(post, t),
            delivery=delivery,
            progress=progress_json(post, delivery, t),
        )

    async def _anchor_text(
        self, uow: UnitOfWork, post: PlannedPost, consultation: Consultation | None, t: Texts
    ) -> str:
        """What a post is tied to ("runde 1 lukker - 1 dag"), and whether the quiet hours
        moved an automatic post from there, so its time does not look like a mistake."""
        if not post.anchor:
            return ""
        described = rules.describe_anchor(post.anchor, t.language)
        if post.created_by != AUTOMATIC or consultation is None:
            return described
        try:
            plain = rules.anchored_time(post.anchor, await phases_of(uow, consultation))
        except PlanError:
            return described
        if plain == post.due_at or post.state not in PostState.OPEN:
            return described
        return f"{described} · {t('admin.plan.out_of_night')}"

    async def _slug(self, uow: UnitOfWork, post: PlannedPost) -> str:
        if post.consultation_id is None:
            return ""
        consultation = await uow.consultations.get(post.consultation_id)
        return consultation.slug if consultation is not None else ""

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self._settings.zone).strftime(rules.TIME_FORMAT)

    def _shown(self, previews: list[Preview]) -> list[dict[str, Any]]:
        return [
            {
                "language": preview.language,
                "public": preview.public,
                "text": preview.payload.get("text") or "",
                "buttons": [b for row in preview.payload.get("buttons") or [] for b in row],
                "image": "image_post" in preview.payload,
                "translated": preview.translated,
            }
            for preview in previews
        ]


def _clean(text: str) -> str:
    """A typed value as it enters the system (as a sheet's cells do)."""
    try:
        return clean_text(text)
    except UnreadableText:
        return ""


def _repeat_text(repeat: dict[str, Any]) -> str:
    """A repeat written back as the sheet takes it (rules.parse_repeat)."""
    every, times = int(repeat["every_days"]), int(repeat["times"])
    if every == 1:
        return f"daily {times}"
    if every == 7:
        return f"weekly {times}"
    return f"every {every} days {times}"


def _problem(problem: SheetError, t: Texts) -> dict[str, Any]:
    return {"row": problem.row, "column": problem.column, "message": problem.message.read(t)}


async def _read_upload(
    request: web.Request,
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """The parts of an upload within the sheet's limits: small fields, the sheet, its images.

    Read part by part, so a file over its limit is refused without holding all of it.
    """
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    images_total = 0
    reader = await request.multipart()
    for _ in range(UPLOAD_FIELDS):
        part = await reader.next()
        if part is None:
            return fields, files
        if not isinstance(part, BodyPartReader):
            continue
        if part.filename is None:
            fields[part.name or ""] = (await _read_part(part, 200, fields)).decode(
                "utf-8", "replace"
            )
            continue
        if part.name == "sheet":
            files["sheet"] = (part.filename, await _read_part(part, MAX_SHEET_BYTES, fields))
            continue
        content = await _read_part(part, MAX_IMAGE_BYTES, fields)
        images_total += len(content)
        if images_total > MAX_SHEET_IMAGE_BYTES:
            reason = Phrase("mistake.plan.images_too_large", limit=size_text(MAX_SHEET_IMAGE_BYTES))
            raise UploadTooLarge(None, reason, fields.get("csrf"))
        if part.filename:
            files[f"image:{part.filename}"] = (part.filename, content)
    return fields, files


async def _read_part(part: BodyPartReader, limit: int, fields: dict[str, str]) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data += chunk
        if len(data) > limit:
            name = part.filename or part.name or ""
            reason = Phrase("mistake.file.too_large", limit=size_text(limit))
            raise UploadTooLarge(name, reason, fields.get("csrf"))
    return bytes(data)
