"""Entering a consultation: /start, the list of open ones, the intro, and consent."""

from __future__ import annotations

import math
import re
import secrets

from handlers import questionnaire as rules
from handlers.consultation.asking import ask, ask_next, close_question_message, sent_message_ref
from handlers.consultation.sheet import (
    active_participation,
    blocked,
    load_sheet,
    round_is_open,
    say_not_open,
    set_active,
    stale,
    title,
    when,
)
from handlers.consultation.summary import show_summary
from handlers.context import FlowContext
from handlers.events import Button, Outcome
from handlers.ideas.common import offer_if_open
from handlers.ideas.rules import ideas_state
from handlers.payloads import ChooseConsultation, Consent
from handlers.privacy import privacy_notice
from storage.models import Consultation, Participation, ParticipationStatus

# Roughly how long one question takes, for the "about N minutes" in the intro.
SECONDS_PER_QUESTION = 20
# A message that could be a slug as a link types it in (wa.me/<number>?text=<slug>).
_TYPED_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")


async def start(ctx: FlowContext, outcome: Outcome) -> None:
    """/start: open the consultation a deep link names, or list the open ones."""
    slug = ctx.event.argument.strip().lower()
    if slug:
        consultation = await ctx.uow.consultations.by_slug(slug)
        if consultation is not None:
            await open_consultation(ctx, outcome, consultation)
            return
        # A poster's link outlives its consultation: say it ended, not that it is mistyped.
        deleted = await ctx.uow.moderation.was_deleted(slug)
        outcome.say(ctx.t("consultation.deleted_link" if deleted else "consultation.unknown_link"))
    await list_open(ctx, outcome)


async def typed_slug(ctx: FlowContext, outcome: Outcome) -> bool:
    """Open the consultation a message names by exactly its slug; False if it names none.

    Channels without deep-link parameters (WhatsApp) type the slug in as the first message.
    """
    text = ctx.event.text.strip().lower()
    if not _TYPED_SLUG.fullmatch(text) or text.isdigit():
        return False
    consultation = await ctx.uow.consultations.by_slug(text)
    if consultation is None:
        return False
    await open_consultation(ctx, outcome, consultation)
    return True


async def list_open(ctx: FlowContext, outcome: Outcome) -> None:
    """Greet, and offer the open consultations as buttons (or say when the next one opens)."""
    organisation = ctx.organisation.name or ctx.t("organisation.unnamed")
    open_now: list[Consultation] = []
    next_opening = None
    for consultation in await ctx.uow.consultations.all():
        state = rules.round_state(await ctx.uow.consultations.rounds(consultation.id), ctx.now)
        if state.status == "open":
            open_now.append(consultation)
        elif (
            state.status == "upcoming"
            and state.round is not None
            and (next_opening is None or state.round.opens_at < next_opening)
        ):
            next_opening = state.round.opens_at
    greeting = ctx.t("start.greeting", organisation=organisation)
    if open_now:
        buttons = tuple(
            (Button(title(ctx, c), payload=ChooseConsultation(c.slug).wire),) for c in open_now
        )
        outcome.say(f"{greeting}\n\n{ctx.t('start.choose')}", buttons=buttons)
    elif next_opening is not None:
        opens = when(ctx, next_opening)
        outcome.say(f"{greeting}\n\n{ctx.t('start.none_open_next', opens=opens)}")
    else:
        outcome.say(f"{greeting}\n\n{ctx.t('start.none_open')}")


async def choose(ctx: FlowContext, outcome: Outcome, slug: str) -> None:
    """A consultation button from the /start list."""
    consultation = await ctx.uow.consultations.by_slug(slug)
    if consultation is None:
        stale(ctx, outcome)
        return
    outcome.ack(ctx.event.button_ack_ref)
    await open_consultation(ctx, outcome, consultation)


async def open_consultation(ctx: FlowContext, outcome: Outcome, consultation: Consultation) -> None:
    """Show the intro and ask for consent, resume, or show the answers of a finished one."""
    state = rules.round_state(await ctx.uow.consultations.rounds(consultation.id), ctx.now)
    round_open = state.status == "open" and state.round is not None
    ideas_open = ideas_state(consultation, ctx.now) == "open"
    if not round_open and not ideas_open:
        say_not_open(ctx, outcome, consultation, state)
        return
    participation = (
        None
        if ctx.first_contact
        else await ctx.uow.participations.find(consultation.id, ctx.participant.id)
    )
    # The link opened again (a new tab, the deep link tapped twice) by someone who was shown
    # the consent card and has not answered it.
    reopened = participation is not None and participation.status == ParticipationStatus.INVITED
    if participation is None:
        participation = await ctx.uow.participations.add(
            Participation(
                consultation_id=consultation.id,
                participant_id=ctx.participant.id,
                pseudonym=f"p-{secrets.token_hex(5)}",
                status=ParticipationStatus.INVITED,
                pending_selection=[],
                started_at=ctx.now,
                updated_at=ctx.now,
            )
        )
    if blocked(ctx, outcome, participation):
        return
    await set_active(ctx, participation)
    if participation.status == ParticipationStatus.ANSWERING and round_open:
        outcome.say(ctx.t("consultation.welcome_back", title=title(ctx, consultation)))
        await resume(ctx, outcome, participation)
        return
    if participation.status == ParticipationStatus.COMPLETED and round_open:
        sheet = await load_sheet(ctx, participation)
        await show_summary(ctx, outcome, sheet, heading="summary.already_answered")
        await offer_if_open(ctx, outcome, participation, consultation)
        return
    if participation.status in (ParticipationStatus.ANSWERING, ParticipationStatus.COMPLETED):
        # The questions are closed, the ideas phase is open.
        await offer_if_open(ctx, outcome, participation, consultation)
        return
    if reopened:
        # The introduction is in the conversation already: one live consent card, not two.
        await _retire_consent_card(ctx, outcome, participation)
        outcome.say(ctx.t("consultation.welcome_back", title=title(ctx, consultation)))
        ask_consent(ctx, outcome, participation)
        return
    questions = await ctx.uow.consultations.questions(consultation.id)
    # A conditional question may or may not come: "8–9", as the first question's "1/9" counts
    # it until an answer rules it out.
    fewest, most = len(rules.applicable(questions, {})), rules.how_many(questions, {})
    count = f"{fewest}–{most}" if fewest < most else str(most)
    language = ctx.t.language
    deadline = (
        state.round.closes_at
        if round_open and state.round is not None
        else consultation.ideas_closes_at or ctx.now
    )
    outcome.say(
        ctx.t(
            "consultation.intro",
            title=title(ctx, consultation),
            purpose=rules.pick(consultation.purpose, language),
            decided=rules.pick(consultation.basis["decided"], language),
            influence=rules.pick(consultation.basis["influence"], language),
            decides=rules.pick(consultation.basis["decides"], language),
            deadline=when(ctx, deadline),
            count=count,
            minutes=max(1, math.ceil(most * SECONDS_PER_QUESTION / 60)),
            results=rules.pick(consultation.results, language),
            organiser=consultation.organiser.get("name", ""),
            contact=consultation.organiser.get("contact", ""),
        )
    )
    ask_consent(ctx, outcome, participation)


async def privacy(ctx: FlowContext, outcome: Outcome) -> None:
    """/privacy; read while the consent card waits, the card comes again below it, so the
    citizen who read before deciding finds the choice where they are."""
    privacy_notice(ctx, outcome)
    participation = await active_participation(ctx)
    if participation is not None and participation.status == ParticipationStatus.INVITED:
        await _retire_consent_card(ctx, outcome, participation)
        ask_consent(ctx, outcome, participation)


async def _retire_consent_card(
    ctx: FlowContext, outcome: Outcome, participation: Participation
) -> None:
    """The consent card already sent loses its buttons: one live card, not two."""
    earlier = await sent_message_ref(ctx, participation.question_message_id)
    if earlier is not None:
        outcome.edit(earlier, f"{ctx.t('consultation.consent')}\n\n{ctx.t('question.asked_again')}")


def ask_consent(ctx: FlowContext, outcome: Outcome, participation: Participation) -> None:
    """Send the consent card; remember it, so a reopened link can retire it."""

    async def remember(outbox_id: int) -> None:
        # No question is asked before consent, so the question's message slot is free.
        await ctx.uow.participations.set_question_message(participation, outbox_id)

    outcome.say(
        ctx.t("consultation.consent"),
        buttons=(
            (Button(ctx.t("consent.yes"), payload=Consent(participation.id, given=True).wire),),
            (Button(ctx.t("consent.no"), payload=Consent(participation.id, given=False).wire),),
        ),
        on_queued=remember,
    )


async def resume(ctx: FlowContext, outcome: Outcome, participation: Participation) -> None:
    """Ask the current question again at the end of the conversation, retiring the old copy.

    Its earlier message would otherwise stay answerable next to the new one.
    """
    sheet = await load_sheet(ctx, participation)
    current = sheet.question(participation.current_question_id)
    if current is None:
        await ask_next(ctx, outcome, participation)
        return
    await close_question_message(ctx, outcome, sheet, current, ctx.t("question.asked_again"))
    ask(ctx, outcome, sheet, current, keep_selection=True)


async def consent(
    ctx: FlowContext, outcome: Outcome, participation: Participation, given: bool
) -> None:
    """Record explicit consent (then ask the first question) or a refusal (then stop)."""
    if participation.status not in (ParticipationStatus.INVITED, ParticipationStatus.DECLINED):
        stale(ctx, outcome)
        return
    outcome.ack(ctx.event.button_ack_ref)
    consultation = await ctx.uow.consultations.get(participation.consultation_id)
    assert consultation is not None
    ideas_open = ideas_state(consultation, ctx.now) == "open"
    if not ideas_open and not await round_is_open(ctx, outcome, consultation):
        return
    participation.updated_at = ctx.now
    choice = ctx.t("consent.given") if given else ctx.t("consent.refused")
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, f"{ctx.t('consultation.consent')}\n\n{choice}")
    if not given:
        participation.status = ParticipationStatus.DECLINED
        participation.declined_at = ctx.now
        await set_active(ctx, None)
        if not await ctx.uow.participations.has_consented(ctx.participant.id):
            # Saying no stores only the no: what they wrote before deciding goes too.
            await ctx.uow.web_messages.erase_citizen_text(
                ctx.participant.channel, ctx.participant.chat_id
            )
        outcome.say(ctx.t("consultation.declined"))
        return
    participation.status = ParticipationStatus.ANSWERING
    participation.consent_at = ctx.now
    participation.declined_at = None
    state = rules.round_state(await ctx.uow.consultations.rounds(consultation.id), ctx.now)
    if state.status == "open":
        await ask_next(ctx, outcome, participation)
    else:
        await offer_if_open(ctx, outcome, participation, consultation)
