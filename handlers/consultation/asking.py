"""Asking: one question per message, its buttons, and what a tap or a typed answer does."""

from __future__ import annotations

from handlers import questionnaire as rules
from handlers.consultation.sheet import (
    Sheet,
    active_participation,
    blocked,
    load_sheet,
    own_participation,
    round_is_open,
    set_active,
    show_answer,
    stale,
)
from handlers.consultation.summary import finish
from handlers.context import FlowContext
from handlers.events import MAX_BUTTON_LABEL, Button, Outcome
from handlers.moderation.intake import queue_for_review, screen_answer, withdraw
from handlers.payloads import (
    ChangeAnswer,
    GoBack,
    PickOption,
    QuestionButton,
    SkipQuestion,
    TickingDone,
    TickOption,
)
from handlers.questions import Answering, kind_of, read_typed
from handlers.screening.rules import ALLOW
from storage.models import Answer, Participation, ParticipationStatus, Question

Buttons = tuple[tuple[Button, ...], ...]
ANSWERING = (ParticipationStatus.ANSWERING, ParticipationStatus.COMPLETED)


async def ask_next(
    ctx: FlowContext, outcome: Outcome, participation: Participation, sheet: Sheet | None = None
) -> None:
    """Ask the next unanswered question, or finish (``sheet``: the participation's, if at hand)."""
    if sheet is None:
        sheet = await load_sheet(ctx, participation)
    question = rules.next_unanswered(sheet.questions, sheet.answers)
    if question is None:
        await finish(ctx, outcome, sheet)
        return
    ask(ctx, outcome, sheet, question)


def question_text(ctx: FlowContext, sheet: Sheet, question: Question) -> str:
    """The question with its progress mark (3/7) and a hint on how to answer."""
    position, total = rules.progress(sheet.questions, sheet.answers, question)
    text = f"{position}/{total} · {rules.pick(question.text, ctx.t.language)}"
    hint = kind_of(question).hint(question, ctx.t)
    return f"{text}\n\n{hint}" if hint else text


def ask(
    ctx: FlowContext,
    outcome: Outcome,
    sheet: Sheet,
    question: Question,
    *,
    keep_selection: bool = False,
) -> None:
    """Send one question with its buttons; remember which message asked it.

    keep_selection: asking the current question again, what is ticked stays ticked.
    """
    participation, answers = sheet.participation, sheet.answers
    answering = kind_of(question).answering
    participation.current_question_id = question.id
    earlier = answers.get(question.id)
    if not keep_selection:
        participation.pending_selection = (
            list(earlier.value)
            if answering is Answering.TICK and earlier is not None and not earlier.skipped
            else []
        )
    text = question_text(ctx, sheet, question)
    if earlier is not None:
        text += "\n\n" + ctx.t(
            "question.current_answer", answer=show_answer(ctx, question, earlier)
        )

    async def remember(outbox_id: int) -> None:
        await ctx.uow.participations.set_question_message(participation, outbox_id)

    outcome.say(
        text,
        buttons=question_buttons(ctx, sheet, question),
        on_queued=remember,
        expects_text=answering is Answering.TYPE,
    )


def question_buttons(ctx: FlowContext, sheet: Sheet, question: Question) -> Buttons:
    """Options (ticked ones marked for multiple choice), then Back and Skip where they apply."""
    participation = sheet.participation
    asked = participation.id, question.id
    keys = rules.option_keys(question)
    kind = kind_of(question)

    def label(key: str) -> str:
        return kind.option_label(question, key, ctx.t)

    rows: list[tuple[Button, ...]] = []
    if kind.answering is Answering.TAP and not kind.buttons_in_one_row:
        rows = [(Button(label(k), payload=PickOption(*asked, i).wire),) for i, k in enumerate(keys)]
    elif kind.answering is Answering.TAP:
        rows = [
            tuple(Button(label(k), payload=PickOption(*asked, i).wire) for i, k in enumerate(keys))
        ]
    elif kind.answering is Answering.TICK:
        ticked = participation.pending_selection
        rows = [
            (
                Button(
                    ("☑ " if k in ticked else "☐ ") + label(k), payload=TickOption(*asked, i).wire
                ),
            )
            for i, k in enumerate(keys)
        ]
        rows.append((Button(ctx.t("question.done"), payload=TickingDone(*asked).wire),))
    navigation: list[Button] = []
    if rules.previous(sheet.questions, sheet.answers, question) is not None:
        navigation.append(Button(ctx.t("question.back"), payload=GoBack(*asked).wire))
    if question.optional:
        navigation.append(Button(ctx.t("question.skip"), payload=SkipQuestion(*asked).wire))
    if navigation:
        rows.append(tuple(navigation))
    return tuple(rows)


async def _pressed(
    ctx: FlowContext, outcome: Outcome, participation_id: int, question_id: int
) -> tuple[Sheet, Question] | None:
    """Resolve a question button; None (after a polite answer) if it is stale or foreign."""
    participation = await own_participation(ctx, participation_id)
    if (
        participation is None
        or participation.status not in ANSWERING
        or participation.current_question_id != question_id
    ):
        stale(ctx, outcome)
        return None
    if blocked(ctx, outcome, participation):
        return None
    sheet = await load_sheet(ctx, participation)
    question = sheet.question(participation.current_question_id)
    if question is None:
        stale(ctx, outcome)
        return None
    if not await round_is_open(ctx, outcome, sheet.consultation):
        outcome.ack(ctx.event.button_ack_ref)
        return None
    await set_active(ctx, participation)
    return sheet, question


async def press(ctx: FlowContext, outcome: Outcome, button: QuestionButton) -> None:
    """Handle a question button: pick an option, tick one, done ticking, skip, back."""
    pressed = await _pressed(ctx, outcome, button.participation_id, button.question_id)
    if pressed is None:
        return
    sheet, question = pressed
    participation = sheet.participation
    answering = kind_of(question).answering
    keys = rules.option_keys(question)
    key: str | None = None
    if isinstance(button, PickOption | TickOption):
        if button.option >= len(keys):
            stale(ctx, outcome)
            return
        key = keys[button.option]
    if isinstance(button, PickOption) and key is not None and answering is Answering.TAP:
        outcome.ack(ctx.event.button_ack_ref)
        await store(ctx, outcome, sheet, question, key)
    elif isinstance(button, TickOption) and key is not None and answering is Answering.TICK:
        selection = participation.pending_selection
        selection = [k for k in selection if k != key] if key in selection else [*selection, key]
        participation.pending_selection = [k for k in keys if k in selection]
        outcome.ack(ctx.event.button_ack_ref)
        if ctx.event.button_message_ref is not None:
            outcome.edit(
                ctx.event.button_message_ref,
                question_text(ctx, sheet, question),
                question_buttons(ctx, sheet, question),
            )
    elif isinstance(button, TickingDone) and answering is Answering.TICK:
        if not participation.pending_selection and not question.optional:
            outcome.ack(ctx.event.button_ack_ref, ctx.t("answer.choose_one"), alert=True)
            return
        outcome.ack(ctx.event.button_ack_ref)
        await store(ctx, outcome, sheet, question, list(participation.pending_selection) or None)
    elif isinstance(button, SkipQuestion) and question.optional:
        outcome.ack(ctx.event.button_ack_ref)
        await store(ctx, outcome, sheet, question, None)
    elif isinstance(button, GoBack) and (
        target := rules.previous(sheet.questions, sheet.answers, question)
    ):
        outcome.ack(ctx.event.button_ack_ref)
        await close_question_message(ctx, outcome, sheet, question, ctx.t("question.went_back"))
        ask(ctx, outcome, sheet, target)
    else:
        stale(ctx, outcome)


async def typed(ctx: FlowContext, outcome: Outcome) -> bool:
    """Treat typed text as the answer to the current question; False if no question waits."""
    participation = await active_participation(ctx)
    if (
        participation is None
        or participation.status not in ANSWERING
        or participation.current_question_id is None
    ):
        return False
    if blocked(ctx, outcome, participation):
        return True
    sheet = await load_sheet(ctx, participation)
    question = sheet.question(participation.current_question_id)
    if question is None:
        return False
    if kind_of(question).answering is not Answering.TYPE:
        outcome.say(ctx.t("answer.use_buttons"))
        return True
    if not await round_is_open(ctx, outcome, sheet.consultation):
        return True
    reading = read_typed(question, ctx.event.text)
    if reading.error is not None:
        outcome.say(ctx.t(reading.error, **(reading.params or {})))
        return True
    await store(ctx, outcome, sheet, question, reading.value)
    return True


async def close_question_message(
    ctx: FlowContext, outcome: Outcome, sheet: Sheet, question: Question, footer: str
) -> None:
    """Replace the question's message with the question and a footer, without buttons.

    An old message can then never answer twice.
    """
    reference = ctx.event.button_message_ref or await sent_message_ref(
        ctx, sheet.participation.question_message_id
    )
    if reference is not None:
        outcome.edit(reference, f"{question_text(ctx, sheet, question)}\n\n{footer}")


async def sent_message_ref(ctx: FlowContext, outbox_id: int | None) -> str | None:
    """The channel's reference to a message the bot queued, once it was sent."""
    if outbox_id is None:
        return None
    return await ctx.uow.outbox.external_ref(outbox_id)


async def store(
    ctx: FlowContext, outcome: Outcome, sheet: Sheet, question: Question, value: object
) -> None:
    """Store (or change) an answer, show it on the question's message, and move on."""
    participation = sheet.participation
    earlier = sheet.answers.get(question.id)
    if earlier is not None:
        await withdraw(ctx, outcome, earlier)
        await ctx.uow.participations.delete_answer(earlier)
    free_text = kind_of(question).free_text and value is not None
    answer = Answer(
        participation_id=participation.id,
        question_id=question.id,
        value=value,
        skipped=value is None,
        # Too short to tell: the language of the conversation, rather than a wild guess.
        language=(ctx.detect_language(str(value)) or ctx.t.language) if free_text else None,
        answered_at=ctx.now,
    )
    screening = (
        await screen_answer(ctx, sheet.consultation, participation, answer) if free_text else None
    )
    await ctx.uow.participations.save_answer(answer)
    sheet = sheet.with_answer(answer)
    await close_question_message(
        ctx, outcome, sheet, question, "✅ " + show_answer(ctx, question, answer)
    )
    if screening is not None and screening.action != ALLOW:
        await queue_for_review(ctx, outcome, sheet.consultation, participation, answer, screening)
    # A changed answer can make later conditional questions irrelevant; drop their answers.
    for irrelevant in rules.no_longer_applicable(sheet.questions, sheet.answers):
        await withdraw(ctx, outcome, irrelevant)
        await ctx.uow.participations.delete_answer(irrelevant)
        sheet = sheet.without_answer(irrelevant)
    participation.pending_selection = []
    participation.current_question_id = None
    participation.updated_at = ctx.now
    # The sheet as it now stands: reading it again would cost a query and a flush per answer.
    await ask_next(ctx, outcome, participation, sheet)


async def review(ctx: FlowContext, outcome: Outcome, participation: Participation) -> None:
    """Offer each answered question as a button, to change it."""
    sheet = await load_sheet(ctx, participation)
    outcome.ack(ctx.event.button_ack_ref)
    if not await round_is_open(ctx, outcome, sheet.consultation):
        return
    buttons = tuple(
        (
            Button(
                rules.shorten(rules.pick(q.text, ctx.t.language), MAX_BUTTON_LABEL),
                payload=ChangeAnswer(participation.id, q.id).wire,
            ),
        )
        for q in rules.applicable(sheet.questions, sheet.answers)
    )
    outcome.say(ctx.t("summary.which"), buttons=buttons)


async def edit_answer(
    ctx: FlowContext, outcome: Outcome, participation: Participation, question_id: int
) -> None:
    """Ask one question again so its answer can be changed."""
    sheet = await load_sheet(ctx, participation)
    question = next(
        (q for q in rules.applicable(sheet.questions, sheet.answers) if q.id == question_id),
        None,
    )
    if question is None or participation.status != ParticipationStatus.COMPLETED:
        stale(ctx, outcome)
        return
    outcome.ack(ctx.event.button_ack_ref)
    if not await round_is_open(ctx, outcome, sheet.consultation):
        return
    await set_active(ctx, participation)
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, ctx.t("summary.which"))
    ask(ctx, outcome, sheet, question)
