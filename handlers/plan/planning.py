"""Put a post into the content plan, checked against the stored consultations; keep anchored
posts in step with their phases; and plan the posts every round gets by itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from handlers.events import Phrase
from handlers.plan import rules
from handlers.plan.rules import Phases, PlanError
from storage.models import Consultation, PlannedPost, PostKind, PostState
from storage.uow import UnitOfWork

# Reminders go this long before a round closes, when the round is long enough to need one.
REMINDER_BEFORE = timedelta(days=1)
# Who planned the posts every round gets by itself.
AUTOMATIC = "auto"
REMINDER_MIN_ROUND = timedelta(days=2)


class FieldError(PlanError):
    """A planning mistake in one field (a sheet column, a step of /plan add)."""

    def __init__(self, field_name: str, phrase: Phrase) -> None:
        super().__init__(phrase)
        self.field = field_name


@dataclass
class PostDraft:
    """A post as staff described it, each part already read by the rules."""

    texts: dict[str, str]
    audience: dict[str, Any]
    when: str = ""
    consultation: str | None = None
    key: str | None = None
    repeat: dict[str, Any] | None = None
    image: bytes | None = None
    button: dict[str, Any] | None = None
    # The approved WhatsApp template for citizens outside WhatsApp's 24-hour window.
    whatsapp_template: str | None = None


async def phases_of(uow: UnitOfWork, consultation: Consultation) -> Phases:
    """A consultation's round and ideas-phase times."""
    rounds = await uow.consultations.rounds(consultation.id)
    ideas = (
        (consultation.ideas_opens_at, consultation.ideas_closes_at)
        if consultation.ideas_opens_at and consultation.ideas_closes_at
        else None
    )
    # Staff count rounds from 1, as the consultation file lists them.
    return Phases({r.position + 1: (r.opens_at, r.closes_at) for r in rounds}, ideas)


async def plan_post(
    uow: UnitOfWork,
    draft: PostDraft,
    now: datetime,
    zone: ZoneInfo,
    created_by: str,
    *,
    channel_configured: bool = True,
    replacing: PlannedPost | None = None,
    by_key: dict[str, PlannedPost] | None = None,
) -> tuple[PlannedPost, bool]:
    """Check a draft against the database and store it; return the post and whether it is new.

    A draft with the key of a post still planned replaces that post; one whose post already went
    out (or was cancelled) is refused, so re-importing a sheet never sends anything twice.
    ``replacing`` is a post being edited (read with ``uow.plan.get_for_update``): the same
    rule holds for it, and the bot's own posts are not edited (their text is written when they
    go out). ``by_key``: the stored posts of a whole sheet's keys, read at once; a new post is
    then only added to the unit, and stored with the rest (``uow.plan.store_added``).
    """
    consultation = None
    if draft.consultation:
        consultation = await uow.consultations.by_slug(draft.consultation)
        if consultation is None:
            raise FieldError(
                "consultation",
                Phrase("mistake.plan.no_consultation", slug=repr(draft.consultation)),
            )
    if rules.needs_consultation(draft.audience) and consultation is None:
        raise FieldError("audience", Phrase("mistake.plan.audience_needs_consultation"))
    await _check_audience(uow, draft.audience, consultation)
    if draft.button and "consultation" in draft.button:
        slug = draft.button["consultation"] or (consultation.slug if consultation else "")
        if not slug or await uow.consultations.by_slug(slug) is None:
            raise FieldError(
                "button",
                Phrase(
                    "mistake.plan.button_consultation", slug=slug or Phrase("mistake.plan.none")
                ),
            )
        draft.button = {**draft.button, "consultation": slug}
    anchor = None
    if draft.when.strip().lower() in ("now", "nu"):
        due_at = now
    else:
        try:
            anchor = rules.parse_anchor(draft.when)
        except PlanError as error:
            raise FieldError("when", error.phrase) from None
        try:
            if anchor is not None:
                if consultation is None:
                    raise PlanError(Phrase("mistake.plan.phase_needs_consultation"))
                due_at = rules.anchored_time(anchor, await phases_of(uow, consultation))
            else:
                due_at = rules.parse_time(draft.when, zone)
        except PlanError as error:
            raise FieldError("when", error.phrase) from None
        if due_at < now - timedelta(minutes=1):
            local = due_at.astimezone(zone)
            raise FieldError("when", Phrase("mistake.plan.passed", time=f"{local:%Y-%m-%d %H:%M}"))
    # Checked last: a row's other mistakes (a time, a consultation) are the ones to fix first.
    try:
        rules.check_channel(draft.audience, channel_configured=channel_configured)
    except PlanError as error:
        raise FieldError("audience", error.phrase) from None
    if replacing is not None:
        post: PlannedPost | None = replacing
        if replacing.state != PostState.PLANNED:
            raise FieldError(
                "id",
                Phrase(
                    "mistake.plan.post_done",
                    post=replacing.id,
                    state=Phrase(f"plan.state.{replacing.state}"),
                ),
            )
        if replacing.kind != PostKind.MESSAGE:
            raise FieldError(
                "id",
                Phrase(
                    "mistake.plan.automatic_post",
                    post=replacing.id,
                    kind=Phrase(f"plan.kind.{replacing.kind}"),
                ),
            )
    else:
        if not draft.key:
            post = None
        elif by_key is not None:
            post = by_key.get(draft.key)
        else:
            post = await uow.plan.by_key(draft.key)
        if post is not None and post.state != PostState.PLANNED:
            raise FieldError(
                "id",
                Phrase(
                    "mistake.plan.key_done",
                    key=repr(draft.key),
                    state=Phrase(f"plan.state.{post.state}"),
                ),
            )
    created = post is None
    if post is None:
        post = PlannedPost(key=draft.key, created_by=created_by, created_at=now)
    post.consultation_id = consultation.id if consultation else None
    post.kind = PostKind.MESSAGE
    post.texts = draft.texts
    post.image = draft.image
    post.image_file_id = None
    post.button = draft.button
    post.whatsapp_template = draft.whatsapp_template
    post.audience = draft.audience
    post.anchor = anchor
    post.repeat = draft.repeat
    # An edited later time of a repeating post stays that time: it does not start over.
    post.occurrence = replacing.occurrence if replacing is not None else 1
    post.due_at = due_at
    post.state = PostState.PLANNED
    post.recipients = 0
    post.updated_at = now
    if created:
        await uow.plan.add(post, at_once=by_key is None)
    return post, created


async def _check_audience(
    uow: UnitOfWork, audience: dict[str, Any], consultation: Consultation | None
) -> None:
    kind = audience.get("subscribers")
    if consultation is None:
        return
    if kind == "segment":
        segment = audience["segment"]
        questions = {q.key: q for q in await uow.consultations.questions(consultation.id)}
        question = questions.get(segment["question"])
        if question is None:
            raise FieldError(
                "audience",
                Phrase(
                    "mistake.plan.no_question",
                    consultation=consultation.slug,
                    question=repr(segment["question"]),
                ),
            )
        known = {str(option["key"]) for option in question.options}
        unknown = [o for o in segment["options"] if o not in known]
        if unknown:
            raise FieldError(
                "audience",
                Phrase(
                    "mistake.plan.no_option",
                    question=repr(question.key),
                    option=repr(unknown[0]),
                    options=", ".join(sorted(known)) or Phrase("mistake.plan.none"),
                ),
            )
    elif kind == "decision":
        statement = await uow.ideas.by_number(consultation.id, int(audience["statement"]))
        if statement is None:
            raise FieldError(
                "audience",
                Phrase(
                    "mistake.plan.no_statement",
                    consultation=consultation.slug,
                    number=audience["statement"],
                ),
            )


async def follow_phases(
    uow: UnitOfWork,
    consultation: Consultation,
    now: datetime,
    stored_in: Callable[..., str],
    zone: ZoneInfo | None = None,
) -> list[Phrase]:
    """Move the planned posts tied to a consultation's phases after its times changed.

    A post whose phase no longer exists is cancelled with the reason as its note (``stored_in``:
    the English texts, for the note's English copy); one whose new time has passed goes out at
    the next check, but a reminder whose phase has closed is cancelled. The automatic posts
    keep out of the quiet hours of ``zone``. Return what changed, for whoever imported the
    consultation to read.
    """
    changes: list[Phrase] = []
    phases = await phases_of(uow, consultation)
    for post in await uow.plan.of_consultation(consultation.id, [PostState.PLANNED]):
        if post.anchor is None:
            continue
        try:
            quiet_in = zone if post.created_by == AUTOMATIC else None
            due_at = rules.anchored_time(post.anchor, phases, quiet_in, now)
        except PlanError as error:
            post.state, post.updated_at = PostState.CANCELLED, now
            rules.set_note(post, [error.phrase], stored_in)
            changes.append(Phrase("plan.change.cancelled", post=post.id, reason=error.phrase))
            continue
        if post.repeat and post.occurrence > 1:
            continue
        if due_at < now and due_at != post.due_at:
            # The new times put it behind: it goes at the next check, as planned late (the
            # late window's "missed while the bot was not running" would not be true), except
            # a reminder whose phase has closed already, which has nothing left to remind of.
            closes = rules.phase_window(post.anchor, phases)[1]
            if int(post.anchor.get("offset_minutes") or 0) < 0 and closes <= now:
                reason = Phrase("plan.note.phase_closed")
                post.state, post.updated_at = PostState.CANCELLED, now
                rules.set_note(post, [reason], stored_in)
                changes.append(Phrase("plan.change.cancelled", post=post.id, reason=reason))
                continue
            due_at = now
        if due_at != post.due_at:
            post.due_at, post.updated_at = due_at, now
            changes.append(Phrase("plan.change.moved", post=post.id))
    return changes


async def plan_automatic_posts(
    uow: UnitOfWork, consultation: Consultation, now: datetime, zone: ZoneInfo | None = None
) -> int:
    """Give every round its announcement, reminder and results post, tied to its times and
    out of the quiet hours of ``zone``.

    Staff see them in the plan like any other post and may cancel them. Return how many were
    added.
    """
    added = 0
    phases = await phases_of(uow, consultation)
    for round_ in await uow.consultations.rounds(consultation.id):
        wanted = [
            (
                PostKind.ANNOUNCEMENT,
                "opens",
                0,
                {"channel": True, "chats": [], "subscribers": None},
            ),
            (
                PostKind.RESULTS,
                "closes",
                0,
                {"channel": True, "chats": [], "subscribers": "hear_back"},
            ),
        ]
        if round_.closes_at - round_.opens_at >= REMINDER_MIN_ROUND:
            minutes = -int(REMINDER_BEFORE.total_seconds() // 60)
            wanted.append(
                (
                    PostKind.REMINDER,
                    "closes",
                    minutes,
                    {"chats": [], "channel": False, "subscribers": "unfinished"},
                )
            )
        for kind, event, offset, audience in wanted:
            number = round_.position + 1
            key = f"auto:{consultation.slug}:{number}:{kind}"
            if await uow.plan.by_key(key) is not None:
                continue
            anchor = {"event": event, "round": number, "offset_minutes": offset}
            due_at = rules.anchored_time(anchor, phases, zone, now)
            if due_at < now:
                continue
            await uow.plan.add(
                PlannedPost(
                    key=key,
                    consultation_id=consultation.id,
                    kind=kind,
                    texts={},
                    audience=audience,
                    anchor=anchor,
                    occurrence=1,
                    due_at=due_at,
                    state=PostState.PLANNED,
                    recipients=0,
                    created_by=AUTOMATIC,
                    created_at=now,
                    updated_at=now,
                )
            )
            added += 1
    return added
