"""The audit trail under /admin/audit: every screening result, decision and staff action, with
filters, in pages, and as a CSV download (the same columns as ``borgerdialog moderation log``)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.admin.accounts import account_pseudonym
from bot.admin.kit import PREFIX, ROLE_KEYS, DashboardKit
from bot.consultations.files import safe_cell
from handlers.context import Texts
from handlers.events import record_id
from handlers.moderation.cards import REASONS
from handlers.moderation.trail import CLI_ACTOR, TRAIL_COLUMNS, trail_row
from storage.models import ModerationLogEntry
from storage.uow import UnitOfWork

AUDIT = f"{PREFIX}/audit"
PAGE_SIZE = 100
FILTER_LENGTH = 64  # longer than any event, actor or slug the trail holds
ADDRESS_LENGTH = 254  # the longest e-mail address an account may have
# What each kind of entry is called on the page; the CSV and the filter's values keep the
# names the command line prints. A kind not named here shows as stored.
EVENT_NAMES = {
    "screened": "admin.audit.event_name.screened",
    "reported": "admin.audit.event_name.reported",
    "held_by_reports": "admin.audit.event_name.held_by_reports",
    "revealed": "admin.audit.event_name.revealed",
    "approved": "admin.audit.event_name.approved",
    "hidden": "admin.audit.event_name.hidden",
    "rephrase": "admin.audit.event_name.rephrase",
    "blocked": "admin.audit.event_name.blocked",
    "withdrawn": "admin.audit.event_name.withdrawn",
    "resubmitted": "admin.audit.event_name.resubmitted",
    "statement_decided": "admin.audit.event_name.statement_decided",
    "staff_login": "admin.audit.event_name.staff_login",
    "staff_lockout": "admin.audit.event_name.staff_lockout",
    "staff_logout": "admin.audit.event_name.staff_logout",
    "staff_added": "admin.audit.event_name.staff_added",
    "staff_removed": "admin.audit.event_name.staff_removed",
    "staff_password_reset": "admin.audit.event_name.staff_password_reset",
    "staff_password_changed": "admin.audit.event_name.staff_password_changed",
    "staff_role_changed": "admin.audit.event_name.staff_role_changed",
    "moderation_reveal": "admin.audit.event_name.moderation_reveal",
    "consultation_imported": "admin.audit.event_name.consultation_imported",
    "consultation_deleted": "admin.audit.event_name.consultation_deleted",
    "delete_reminded": "admin.audit.event_name.delete_reminded",
    "plan_post_added": "admin.audit.event_name.plan_post_added",
    "plan_post_edited": "admin.audit.event_name.plan_post_edited",
    "plan_post_cancelled": "admin.audit.event_name.plan_post_cancelled",
    "plan_sheet_imported": "admin.audit.event_name.plan_sheet_imported",
    "results_exported": "admin.audit.event_name.results_exported",
    "audit_exported": "admin.audit.event_name.audit_exported",
}

# The short codes of the before and after columns, as the page says them.
CODE_NAMES = {
    **{state: f"admin.results.state.{state}" for state in ("visible", "held", "hidden")},
    **{
        state: f"plan.state.{state}"
        for state in ("planned", "sending", "sent", "cancelled", "failed", "skipped")
    },
    **{
        decision: f"export.decision.{decision}"
        for decision in ("accepted", "rejected", "considering", "merged")
    },
    "created": "admin.audit.code.created",
    "updated": "admin.audit.code.updated",
}
# Written out: the catalog test finds a text's key only as a whole string.
FLAG_NAMES = {
    "cpr": "admin.audit.flag.cpr",
    "phone": "admin.audit.flag.phone",
    "email": "admin.audit.flag.email",
    "address": "admin.audit.flag.address",
    "name": "admin.audit.flag.name",
    "offensive": "admin.audit.flag.offensive",
    "rude": "admin.audit.flag.rude",
    "threat": "admin.audit.flag.threat",
    "link": "admin.audit.flag.link",
    "repeated": "admin.audit.flag.repeated",
    "long": "admin.audit.flag.long",
    "shouting": "admin.audit.flag.shouting",
    "flood": "admin.audit.flag.flood",
    "off_language": "admin.audit.flag.off_language",
    "health": "admin.audit.flag.health",
    "politics": "admin.audit.flag.politics",
    "religion": "admin.audit.flag.religion",
    "sexuality": "admin.audit.flag.sexuality",
    "union": "admin.audit.flag.union",
    "ethnicity": "admin.audit.flag.ethnicity",
}


# A deletion's counts as the trail keeps them (bot.consultations.deletion.DeletionReport).
_DELETED_COUNTS = re.compile(
    r"p(?P<participations>\d+) a(?P<answers>\d+) s(?P<statements>\d+) v(?P<votes>\d+) "
    r"f(?P<forgotten>\d+)"
)


def readable_row(row: dict[str, object], t: Texts) -> dict[str, object]:
    """A trail row as the page shows it: its codes in the reader's language where they have a
    name (the download and the command line keep the codes)."""
    shown = dict(row)

    def named(value: object, names: dict[str, str]) -> object:
        return t(names[value]) if isinstance(value, str) and value in names else value

    shown["event"] = named(row["event"], EVENT_NAMES)
    shown["before"] = named(row["before"], CODE_NAMES)
    shown["after"] = named(row["after"], CODE_NAMES)
    reason = row["reason"]
    if isinstance(reason, str) and reason in REASONS:
        shown["reason"] = t(f"moderation.reason_button.{reason}")
    deleted = _DELETED_COUNTS.fullmatch(reason) if isinstance(reason, str) else None
    if row["event"] == "consultation_deleted" and deleted is not None:
        shown["reason"] = t("admin.audit.deleted_counts", **deleted.groupdict())
    flags = str(row["flags"] or "").split()
    shown["flags"] = ", ".join(str(named(flag, FLAG_NAMES)) for flag in flags)
    return shown


def named_accounts(row: dict[str, object], accounts: dict[str, str], t: Texts) -> dict[str, object]:
    """A page row with each actor's role in the reader's words, and the e-mail address after
    each pseudonym of an account that still exists, for the admins who read the page (the
    download and the command line keep the codes and pseudonyms; once an account is removed,
    its entries name nobody)."""
    shown = dict(row)
    for column in ("actor", "author"):
        value = row.get(column)
        if not isinstance(value, str):
            continue
        if value == CLI_ACTOR:
            shown[column] = t("admin.audit.actor.command_line")
            continue
        role, _, pseudonym = value.rpartition(" ")
        if role in ROLE_KEYS:
            value = f"{t(ROLE_KEYS[role])} {pseudonym}"
        shown[column] = f"{value} ({accounts[pseudonym]})" if pseudonym in accounts else value
    return shown


def actor_code(wanted: str, accounts: dict[str, str], t: Texts) -> str:
    """What the "by" field means in the trail's own codes: an account's address is its
    pseudonym, a role in the reader's words its code ("kommunikationsmedarbejder": staff)."""
    folded = wanted.casefold()
    if "@" in wanted:
        found = [p for p, email in accounts.items() if email.casefold() == folded]
        return found[0] if found else wanted
    for role, key in ROLE_KEYS.items():
        if t(key).casefold() == folded:
            return f"{role} "
    if t("admin.audit.actor.command_line").casefold() == folded:
        return CLI_ACTOR
    return wanted


@dataclass(frozen=True)
class TrailFilter:
    """What the reader asked to see; ``problem`` is a text key when a date was not one."""

    event: str = ""
    actor: str = ""
    consultation: str = ""
    since: str = ""
    until: str = ""
    problem: str | None = None

    def query(self) -> dict[str, str]:
        """The filter as the address's query, for links to the next page and the download."""
        fields = {
            "event": self.event,
            "actor": self.actor,
            "consultation": self.consultation,
            "from": self.since,
            "to": self.until,
        }
        return {name: value for name, value in fields.items() if value}


def read_filter(query: Any) -> TrailFilter:
    def field(name: str) -> str:
        # The actor field takes a staff member's e-mail address too, which may be long.
        limit = ADDRESS_LENGTH if name == "actor" else FILTER_LENGTH
        return str(query.get(name, "")).strip()[:limit]

    since, until = field("from"), field("to")
    problem = None
    for value in (since, until):
        if value and _day(value) is None:
            problem = "admin.audit.bad_date"
    first, last = _day(since), _day(until)
    if problem is None and first is not None and last is not None and first > last:
        problem = "admin.audit.dates_reversed"
    return TrailFilter(field("event"), field("actor"), field("consultation"), since, until, problem)


def _day(value: str) -> date | None:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    # The first and the last day Python has are no filter anyone means, and their midnight in
    # the zone (or the day after "to") is no datetime: 0001-01-01 and 9999-12-31 crashed here.
    return day if date.min < day < date.max else None


class AuditPages:
    """The trail for admins: who did what and when, by pseudonym, never a citizen's words."""

    def __init__(self, kit: DashboardKit) -> None:
        self._kit = kit

    def add_routes(self, app: web.Application) -> None:
        self._kit.add_section("audit", AUDIT, "admin.nav.audit")
        app.router.add_get(AUDIT, self.trail)
        app.router.add_get(f"{AUDIT}.csv", self.download)

    async def trail(self, request: web.Request) -> web.Response:
        kit = self._kit
        visitor = await kit.require(request, "audit")
        wanted = read_filter(request.query)
        # A row id as the next-page link writes it; not str.isdigit(), which takes "²", nor a
        # number larger than the column holds (both crashed the page).
        before_id = record_id(request.query.get("before", ""))
        async with kit.uow.read() as uow:
            events = await uow.moderation.log_events()
            accounts = await self._accounts(uow)
            actor = actor_code(wanted.actor, accounts, visitor.texts)
            entries = await self._entries(uow, wanted, before_id, PAGE_SIZE + 1, actor)
        more = len(entries) > PAGE_SIZE
        entries = entries[:PAGE_SIZE]
        rows = [
            named_accounts(
                readable_row(trail_row(entry, kit.settings.zone), visitor.texts),
                accounts,
                visitor.texts,
            )
            for entry in entries
        ]
        next_query = {**wanted.query(), "before": str(entries[-1].id)} if more else None
        context = {
            "wanted": wanted,
            "events": events,
            "event_names": EVENT_NAMES,
            "rows": rows,
            "columns": TRAIL_COLUMNS,
            "next_query": next_query,
            "download_query": wanted.query(),
        }
        status = 400 if wanted.problem else 200
        return kit.render(request, visitor, "audit/trail.html", context, status=status)

    async def download(self, request: web.Request) -> web.StreamResponse:
        """Every entry the filter selects, as CSV; the download itself goes in the trail."""
        kit = self._kit
        visitor = await kit.require(request, "audit")
        wanted = read_filter(request.query)
        if wanted.problem:
            raise web.HTTPSeeOther(f"{AUDIT}?{urlencode(wanted.query())}")
        async with kit.uow() as uow:
            actor = actor_code(wanted.actor, await self._accounts(uow), visitor.texts)
            entries = await self._entries(uow, wanted, None, None, actor)
            await kit.audit(uow, visitor.account, "audit_exported")
            await uow.commit()
        out = io.StringIO()
        # As the results exports: semicolons and a byte-order mark, which Danish Excel reads
        # into columns and as UTF-8 (the command line's log keeps plain commas).
        writer = csv.writer(out, delimiter=";")
        writer.writerow(TRAIL_COLUMNS)
        for entry in reversed(entries):  # oldest first, like the CLI's export
            row = trail_row(entry, kit.settings.zone)
            # Reasons are free text: inert in a spreadsheet, as in every export.
            writer.writerow(safe_cell(row[column]) for column in TRAIL_COLUMNS)
        stamp = kit.clock().astimezone(kit.settings.zone).strftime("%Y-%m-%d")
        response = web.Response(
            body=out.getvalue().encode("utf-8-sig"),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"',
                "Cache-Control": "no-store",
            },
        )
        return response

    async def _accounts(self, uow: UnitOfWork) -> dict[str, str]:
        """The e-mail address of each account that exists, by its pseudonym in the trail."""
        key = self._kit.pseudonym_key
        return {account_pseudonym(key, a.id): a.email for a in await uow.staff.all()}

    async def _slug_of(self, uow: UnitOfWork, wanted: str) -> str:
        """The slug the trail names a consultation by, for a slug or part of one title (a
        deleted consultation is found by its slug only)."""
        folded = wanted.casefold()
        if not folded:
            return wanted
        consultations = await uow.consultations.all()
        if any(c.slug == wanted for c in consultations):
            return wanted
        titled = [
            c.slug
            for c in consultations
            if any(folded in title.casefold() for title in c.title.values())
        ]
        return titled[0] if len(titled) == 1 else wanted

    async def _entries(
        self,
        uow: UnitOfWork,
        wanted: TrailFilter,
        before_id: int | None,
        limit: int | None,
        actor: str,
    ) -> list[ModerationLogEntry]:
        zone = self._kit.settings.zone
        since_day, until_day = _day(wanted.since), _day(wanted.until)
        since = datetime.combine(since_day, time(0), zone) if since_day else None
        # "to" is the last day shown, whole.
        until = (
            datetime.combine(until_day + timedelta(days=1), time(0), zone) if until_day else None
        )
        return await uow.moderation.log_page(
            event=wanted.event or None,
            actor=actor or None,
            # A role ("staff ") is the accounts of that role, not the command line's entries,
            # whose actor begins the same way.
            not_actor=CLI_ACTOR if actor.endswith(" ") else None,
            consultation=await self._slug_of(uow, wanted.consultation) or None,
            since=since,
            until=until,
            before_id=before_id,
            limit=limit,
        )
