"""The staff chat: see the plan, add a post step by step, cancel one, send one now.

Each staff member has their own draft, kept in the staff chat's stored state under their id, so a
restart (or a second process) continues the conversation. Every draft goes through the same rules
as the content-plan sheet.

The WhatsApp template is asked only where it can matter: WhatsApp is configured and the post goes
to subscribers (the public channel and Telegram chats never reach a WhatsApp citizen). Staff who
do not use WhatsApp are not asked about it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from handlers import common, questionnaire
from handlers.context import FlowContext, Texts
from handlers.events import Button, ChatAddress, Outcome, Phrase, record_id
from handlers.payloads import (
    CancelPost,
    CancelStep,
    ConfirmDraft,
    DraftAudience,
    DraftConsultation,
    DropDraft,
    NoTemplate,
    Payload,
    SkipEnglish,
    StaffButton,
    parse,
)
from handlers.plan import rules
from handlers.plan.planning import FieldError, PostDraft, plan_post
from handlers.plan.rules import PlanError
from storage.models import Consultation, PlannedPost, PostState

DRAFTS = "plan_drafts"
LISTED = 15
PLAN_COMMANDS = {"plan", "planlæg"}
POST_COMMANDS = {"post", "send"}
# Whom a draft post can go to from the staff chat; the last two need a consultation.
AUDIENCES = ("channel", "everyone", "participants", "unfinished")
# The steps of a draft, in order; "when" is left out when sending now, "whatsapp_template"
# unless it can matter (see _asks_template).
STEPS = ("consultation", "when", "audience", "text_da", "text_en", "whatsapp_template", "preview")
# How much of a refused template name the answer quotes.
QUOTED_NAME = 60


def is_staff_chat(ctx: FlowContext) -> bool:
    """Whether the event comes from the staff chat."""
    chat = ctx.staff_chat
    return chat is not None and ChatAddress(ctx.event.channel, ctx.event.chat_id) == chat


def when_text(moment: datetime, zone: ZoneInfo) -> str:
    """A time as staff plan it: local, to the minute."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def post_title(post: PlannedPost, consultation: Consultation | None, t: Texts) -> str:
    """How staff recognise a post: its number, kind and consultation."""
    kind = t(f"plan.kind.{post.kind}")
    if consultation is None:
        return f"#{post.id} {kind}"
    return f"#{post.id} {kind} · {questionnaire.pick(consultation.title, t.language)}"


def progress_text(
    t: Texts, post: PlannedPost, title: str, counts: dict[str, int], zone: ZoneInfo
) -> str:
    """The staff chat's report of a post going out, edited as it goes."""
    if post.state == PostState.SKIPPED:
        return t("plan.progress.skipped", post=title, reason=rules.note_text(post, t))
    delivery = rules.Delivery.of(post.recipients, counts)
    head = "plan.progress.sent" if post.state == PostState.SENT else "plan.progress.sending"
    lines = [
        t(head, post=title, done=delivery.done, total=delivery.total),
        t(
            "plan.progress.counts",
            sent=delivery.sent,
            unreachable=delivery.unreachable,
            failed=delivery.failed,
        ),
    ]
    if post.late_seconds:
        lines.append(
            t(
                "plan.progress.late",
                minutes=max(1, post.late_seconds // 60),
                planned=when_text(post.due_at, zone),
            )
        )
    if post.state == PostState.FAILED or (post.error and post.state == PostState.SENT):
        lines.append(t("plan.progress.failed", reason=rules.note_text(post, t)))
    return "\n".join(lines)


def claims(ctx: FlowContext) -> bool:
    """Whether an event in a chat shared with the moderators is for the content plan."""
    event = ctx.event
    if event.is_command:
        return event.command in PLAN_COMMANDS | POST_COMMANDS
    if event.is_button:
        return isinstance(parse(event.button or ""), StaffButton)
    return _draft(ctx) is not None


async def handle(ctx: FlowContext, outcome: Outcome) -> None:
    """Handle a command, a button or a draft's typed answer in the staff chat."""
    event = ctx.event
    if event.sender_verified is not True:
        # Typed text from someone unconfirmed is not answered: it may be talk between members.
        if event.is_command or event.is_button:
            common.refuse_unverified(ctx, outcome, "plan.staff.unverified", "plan.staff.refused")
        return
    if event.is_command:
        await _command(ctx, outcome)
    elif event.is_button:
        assert event.button is not None
        await _press(ctx, outcome, parse(event.button))
    elif event.text.strip() and _draft(ctx) is not None:
        await _typed(ctx, outcome, event.text.strip())


async def _command(ctx: FlowContext, outcome: Outcome) -> None:
    command, argument = ctx.event.command, ctx.event.argument.strip()
    words = argument.split()
    if command in POST_COMMANDS:
        await _start_draft(ctx, outcome, now=True)
    elif command in PLAN_COMMANDS and not words:
        await show_plan(ctx, outcome)
    elif command in PLAN_COMMANDS and words[0].lower() in ("add", "ny", "tilføj"):
        await _start_draft(ctx, outcome, now=False)
    elif command in PLAN_COMMANDS and words[0].lower() in ("cancel", "aflys"):
        post_id = record_id(words[1].lstrip("#")) if len(words) > 1 else None
        if post_id is not None:
            await _ask_cancel(ctx, outcome, post_id)
        else:
            await show_plan(ctx, outcome, cancelling=True)
    else:
        outcome.say(ctx.t("plan.staff.help"))


async def show_plan(ctx: FlowContext, outcome: Outcome, *, cancelling: bool = False) -> None:
    """List the posts that have not gone out yet, soonest first."""
    posts = await ctx.uow.plan.listing(states=PostState.OPEN, limit=LISTED + 1)
    if not posts:
        outcome.say(ctx.t("plan.staff.empty"))
        return
    lines = [ctx.t("plan.staff.upcoming", count=len(posts[:LISTED]))]
    buttons: list[tuple[Button, ...]] = []
    for post in posts[:LISTED]:
        consultation = (
            await ctx.uow.consultations.get(post.consultation_id) if post.consultation_id else None
        )
        lines.append(await _line(ctx, post, consultation))
        if cancelling and post.state == PostState.PLANNED:
            label = ctx.t("plan.staff.cancel_button", post=post.id)
            buttons.append((Button(label, payload=CancelPost(post.id, CancelStep.ASK).wire),))
    if len(posts) > LISTED:
        lines.append(ctx.t("plan.staff.more"))
    outcome.say("\n".join(lines), buttons=tuple(buttons))


async def _line(ctx: FlowContext, post: PlannedPost, consultation: Consultation | None) -> str:
    language = ctx.t.language
    anchor = f" ({rules.describe_anchor(post.anchor, language)})" if post.anchor else ""
    state = ctx.t(f"plan.state.{post.state}")
    return (
        f"{post_title(post, consultation, ctx.t)} · {when_text(post.due_at, ctx.zone)}{anchor}"
        f" · {rules.describe_audience(post.audience, language)} · {state}"
    )


async def _ask_cancel(ctx: FlowContext, outcome: Outcome, post_id: int) -> None:
    post = await ctx.uow.plan.get(post_id)
    if post is None:
        outcome.say(ctx.t("plan.staff.no_post", post=post_id))
        return
    if post.state != PostState.PLANNED:
        outcome.say(
            ctx.t("plan.staff.cannot_cancel", post=post_id, state=ctx.t(f"plan.state.{post.state}"))
        )
        return
    consultation = (
        await ctx.uow.consultations.get(post.consultation_id) if post.consultation_id else None
    )
    text = ctx.t("plan.staff.confirm_cancel", post=await _line(ctx, post, consultation))
    preview = questionnaire.pick(post.texts, ctx.t.language) if post.texts else ""
    if preview:
        text += "\n\n" + questionnaire.shorten(preview, 600)
    outcome.say(
        text,
        buttons=(
            (
                Button(
                    ctx.t("plan.staff.cancel_yes"),
                    payload=CancelPost(post_id, CancelStep.CONFIRM).wire,
                ),
                Button(
                    ctx.t("plan.staff.cancel_no"), payload=CancelPost(post_id, CancelStep.KEEP).wire
                ),
            ),
        ),
    )


async def _press(ctx: FlowContext, outcome: Outcome, button: Payload | None) -> None:
    if isinstance(button, CancelPost):
        post_id = button.post_id
        outcome.ack(ctx.event.button_ack_ref)
        if button.step == CancelStep.ASK:
            await _ask_cancel(ctx, outcome, post_id)
        elif button.step == CancelStep.CONFIRM:
            cancelled = await ctx.uow.plan.cancel(post_id, ctx.now)
            key = "plan.staff.cancelled" if cancelled else "plan.staff.not_cancelled"
            _finish_message(ctx, outcome, ctx.t(key, post=post_id))
        else:
            _finish_message(ctx, outcome, ctx.t("plan.staff.kept", post=post_id))
        return
    draft = _draft(ctx)
    if not isinstance(button, StaffButton) or draft is None:
        outcome.ack(ctx.event.button_ack_ref, ctx.t("plan.staff.no_draft"), alert=True)
        return
    outcome.ack(ctx.event.button_ack_ref)
    step = draft["step"]
    if isinstance(button, DropDraft):
        _save_draft(ctx, None)
        _finish_message(ctx, outcome, ctx.t("plan.staff.draft_dropped"))
    elif isinstance(button, DraftConsultation) and step == "consultation":
        draft["consultation"] = button.slug
        await _advance(ctx, outcome, draft)
    elif isinstance(button, DraftAudience) and step == "audience" and button.audience in AUDIENCES:
        await _take_answer(ctx, outcome, draft, button.audience)
    elif isinstance(button, SkipEnglish) and step == "text_en":
        draft.pop("text_en", None)
        await _advance(ctx, outcome, draft)
    elif isinstance(button, NoTemplate) and step == "whatsapp_template":
        draft["whatsapp_template"] = None
        await _advance(ctx, outcome, draft)
    elif isinstance(button, ConfirmDraft) and step == "preview":
        await _confirm(ctx, outcome, draft)
    else:
        outcome.say(ctx.t("plan.staff.no_draft"))


def _finish_message(ctx: FlowContext, outcome: Outcome, text: str) -> None:
    """Replace the message with the buttons by the result, so nobody presses them again."""
    ref = ctx.event.button_message_ref
    if ref is not None:
        outcome.edit(ref, text)
    else:
        outcome.say(text)


def _drafts(ctx: FlowContext) -> dict[str, Any]:
    return dict(ctx.participant.state.get(DRAFTS) or {})


def _draft(ctx: FlowContext) -> dict[str, Any] | None:
    draft = _drafts(ctx).get(ctx.event.sender_id or "")
    return dict(draft) if draft else None


def _save_draft(ctx: FlowContext, draft: dict[str, Any] | None) -> None:
    drafts = _drafts(ctx)
    sender = ctx.event.sender_id or ""
    if draft is None:
        drafts.pop(sender, None)
    else:
        drafts[sender] = draft
    ctx.participant.state = {**ctx.participant.state, DRAFTS: drafts}


async def _start_draft(ctx: FlowContext, outcome: Outcome, *, now: bool) -> None:
    draft: dict[str, Any] = {"step": "consultation", "now": now}
    await _ask(ctx, outcome, draft)


async def _advance(ctx: FlowContext, outcome: Outcome, draft: dict[str, Any]) -> None:
    index = STEPS.index(draft["step"]) + 1
    if STEPS[index] == "when" and draft["now"]:
        index += 1
    if STEPS[index] == "whatsapp_template" and not _asks_template(ctx, draft):
        draft.pop("whatsapp_template", None)
        index += 1
    draft["step"] = STEPS[index]
    await _ask(ctx, outcome, draft)


def _asks_template(ctx: FlowContext, draft: dict[str, Any]) -> bool:
    """Whether the draft needs a WhatsApp template: WhatsApp is on and subscribers get it."""
    audience = draft.get("audience") or {}
    return ctx.whatsapp_enabled and audience.get("subscribers") is not None


async def _ask(ctx: FlowContext, outcome: Outcome, draft: dict[str, Any]) -> None:
    """Ask the draft's current step, and remember where the draft is."""
    _save_draft(ctx, draft)
    step = draft["step"]
    name = ctx.event.sender_name or ""
    cancel = Button(ctx.t("plan.staff.drop"), payload=DropDraft().wire)
    if step == "consultation":
        rows = [
            (
                Button(
                    questionnaire.pick(c.title, ctx.t.language)[:60],
                    payload=DraftConsultation(c.slug).wire,
                ),
            )
            for c in await ctx.uow.consultations.all()
        ]
        no_consultation = DraftConsultation(None).wire
        rows.append((Button(ctx.t("plan.staff.no_consultation"), payload=no_consultation),))
        rows.append((cancel,))
        key = "plan.staff.ask_consultation_now" if draft["now"] else "plan.staff.ask_consultation"
        outcome.say(ctx.t(key, name=name), buttons=tuple(rows))
    elif step == "when":
        outcome.say(ctx.t("plan.staff.ask_when", name=name), buttons=((cancel,),))
    elif step == "audience":
        choices = AUDIENCES if draft.get("consultation") else AUDIENCES[:2]
        rows = [
            (Button(ctx.t(f"plan.audience.{choice}"), payload=DraftAudience(choice).wire),)
            for choice in choices
        ]
        outcome.say(ctx.t("plan.staff.ask_audience", name=name), buttons=(*rows, (cancel,)))
    elif step == "text_da":
        outcome.say(ctx.t("plan.staff.ask_text_da", name=name), buttons=((cancel,),))
    elif step == "text_en":
        skip = Button(ctx.t("plan.staff.skip_english"), payload=SkipEnglish().wire)
        outcome.say(ctx.t("plan.staff.ask_text_en", name=name), buttons=((skip, cancel),))
    elif step == "whatsapp_template":
        none = Button(ctx.t("plan.staff.no_template"), payload=NoTemplate().wire)
        outcome.say(ctx.t("plan.staff.ask_template", name=name), buttons=((none, cancel),))
    else:
        await _preview(ctx, outcome, draft, cancel)


async def _typed(ctx: FlowContext, outcome: Outcome, text: str) -> None:
    draft = _draft(ctx)
    assert draft is not None
    await _take_answer(ctx, outcome, draft, text)


async def _take_answer(
    ctx: FlowContext, outcome: Outcome, draft: dict[str, Any], text: str
) -> None:
    """Check a typed (or tapped) answer with the plan's rules; ask again if it does not pass."""
    step = draft["step"]
    try:
        if step == "when":
            if rules.parse_anchor(text) is None:
                rules.parse_time(text, ctx.zone)
            draft["when"] = text
        elif step == "audience":
            draft["audience"] = rules.parse_audience(text)
        elif step in ("text_da", "text_en"):
            draft[step] = rules.check_text(
                text, with_image=False, what=Phrase("plan.staff.the_text")
            )
        elif step == "whatsapp_template":
            try:
                draft[step] = rules.check_template_name(text)
            except PlanError as error:
                quoted = repr(questionnaire.shorten(text, QUOTED_NAME))
                raise PlanError(
                    Phrase("mistake.plan.quoted", value=quoted, problem=error.phrase)
                ) from None
        else:
            outcome.say(ctx.t("plan.staff.use_buttons"))
            return
    except PlanError as error:
        outcome.say(ctx.t("plan.staff.try_again", reason=error.phrase.read(ctx.t)))
        return
    await _advance(ctx, outcome, draft)


def _to_draft(draft: dict[str, Any]) -> PostDraft:
    texts_by_language = {"da": draft["text_da"]}
    if draft.get("text_en"):
        texts_by_language["en"] = draft["text_en"]
    return PostDraft(
        texts=texts_by_language,
        audience=draft["audience"],
        when="now" if draft["now"] else draft["when"],
        consultation=draft.get("consultation"),
        whatsapp_template=draft.get("whatsapp_template"),
    )


async def _preview(
    ctx: FlowContext, outcome: Outcome, draft: dict[str, Any], cancel: Button
) -> None:
    when = ctx.t("plan.staff.right_away") if draft["now"] else draft["when"]
    lines = [
        ctx.t(
            "plan.staff.preview",
            when=when,
            audience=rules.describe_audience(draft["audience"], ctx.t.language),
            consultation=draft.get("consultation") or "–",
        ),
        "",
        draft["text_da"],
    ]
    if "whatsapp_template" in draft:
        template = draft["whatsapp_template"]
        lines.insert(
            1,
            ctx.t("plan.staff.preview_template", template=template)
            if template
            else ctx.t("plan.staff.preview_no_template"),
        )
    if draft.get("text_en"):
        lines += ["", "🇬🇧 " + draft["text_en"]]
    confirm_key = "plan.staff.send_now" if draft["now"] else "plan.staff.plan_it"
    confirm = ctx.t(confirm_key)
    outcome.say(
        questionnaire.shorten("\n".join(lines), 4000),
        buttons=((Button(confirm, payload=ConfirmDraft().wire), cancel),),
    )


async def _confirm(ctx: FlowContext, outcome: Outcome, draft: dict[str, Any]) -> None:
    sender = f"staff {ctx.staff_pseudonym()}"
    try:
        post, _ = await plan_post(ctx.uow, _to_draft(draft), ctx.now, ctx.zone, sender)
    except FieldError as error:
        step = {"consultation": "consultation", "audience": "audience"}.get(error.field, "when")
        if step == "when" and draft["now"]:
            step = "audience"
        draft["step"] = step
        outcome.say(ctx.t("plan.staff.try_again", reason=error.phrase.read(ctx.t)))
        await _ask(ctx, outcome, draft)
        return
    _save_draft(ctx, None)
    if draft["now"]:
        _finish_message(ctx, outcome, ctx.t("plan.staff.sending_now", post=post.id))
    else:
        _finish_message(
            ctx,
            outcome,
            ctx.t("plan.staff.planned", post=post.id, when=when_text(post.due_at, ctx.zone)),
        )
