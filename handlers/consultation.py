"""The citizen's consultation: intro, consent, one question at a time, summary, hearing back."""

from __future__ import annotations

import math
import secrets
from datetime import datetime

from babel.dates import format_datetime

from handlers import questionnaire as rules
from handlers.context import FlowContext
from handlers.events import Button, Outcome
from storage.models import (
    Answer,
    Consultation,
    Participation,
    ParticipationStatus,
    Question,
)

# Roughly how long one question takes, for the "about N minutes" in the intro.
SECONDS_PER_QUESTION = 20
CHOICE_KINDS = ("single", "district", "yesno", "scale")
TYPED_KINDS = ("number", "postcode", "text", "idea")

Buttons = tuple[tuple[Button, ...], ...]


# -- helpers -----------------------------------------------------------------------------------


def _when(ctx: FlowContext, moment: datetime) -> str:
    return str(
        format_datetime(moment, ctx.t("format.datetime"), tzinfo=ctx.zone, locale=ctx.t.language)
    )


def _title(ctx: FlowContext, consultation: Consultation) -> str:
    return rules.pick(consultation.title, ctx.t.language)


def show_answer(ctx: FlowContext, question: Question, answer: Answer) -> str:
    if answer.skipped:
        return ctx.t("answer.skipped")
    yes, no = ctx.t("answer.yes"), ctx.t("answer.no")
    if question.kind == "multiple":
        return "; ".join(
            rules.option_label(question, key, ctx.t.language, yes, no) for key in answer.value
        )
    if question.kind in CHOICE_KINDS:
        return rules.option_label(question, str(answer.value), ctx.t.language, yes, no)
    return rules.shorten(str(answer.value))


async def _load(
    ctx: FlowContext, participation: Participation
) -> tuple[Consultation, list[Question], dict[int, Answer]]:
    consultation = await ctx.uow.consultations.get(participation.consultation_id)
    assert consultation is not None
    questions = await ctx.uow.consultations.questions(consultation.id)
    answers = rules.answers_by_question(await ctx.uow.participations.answers(participation.id))
    return consultation, questions, answers


async def own_participation(ctx: FlowContext, participation_id: str) -> Participation | None:
    """Return a participation named by a button, if it belongs to whoever pressed it."""
    if not participation_id.isdigit():
        return None
    participation = await ctx.uow.participations.get(int(participation_id))
    if participation is None or participation.participant_id != ctx.participant.id:
        return None
    return participation


async def active_participation(ctx: FlowContext) -> Participation | None:
    """The participation the participant's conversation is currently in, if any."""
    participation_id = ctx.participant.state.get("participation")
    if participation_id is None:
        return None
    return await own_participation(ctx, str(participation_id))


def _set_active(ctx: FlowContext, participation: Participation | None) -> None:
    state = dict(ctx.participant.state)
    if participation is None:
        state.pop("participation", None)
    else:
        state["participation"] = participation.id
    # A new dict, so the JSON column is seen as changed.
    ctx.participant.state = state


async def _round_is_open(ctx: FlowContext, outcome: Outcome, consultation: Consultation) -> bool:
    """Say so and return False when the consultation takes no answers now."""
    state = rules.round_state(await ctx.uow.consultations.rounds(consultation.id), ctx.now)
    if state.status == "open":
        return True
    _say_not_open(ctx, outcome, consultation, state)
    return False


def _say_not_open(
    ctx: FlowContext, outcome: Outcome, consultation: Consultation, state: rules.RoundState
) -> None:
    title = _title(ctx, consultation)
    if state.status == "upcoming" and state.round is not None:
        outcome.say(
            ctx.t("consultation.not_yet_open", title=title, opens=_when(ctx, state.round.opens_at))
        )
    else:
        outcome.say(
            ctx.t(
                "consultation.closed",
                title=title,
                results=rules.pick(consultation.results, ctx.t.language),
            )
        )


# -- start: choose and open a consultation -------------------------------------------------------


async def start(ctx: FlowContext, outcome: Outcome) -> None:
    """/start: open the consultation a deep link names, or list the open ones."""
    slug = ctx.event.argument.strip().lower()
    if slug:
        consultation = await ctx.uow.consultations.by_slug(slug)
        if consultation is not None:
            await open_consultation(ctx, outcome, consultation)
            return
        outcome.say(ctx.t("consultation.unknown_link"))
    await list_open(ctx, outcome)


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
        buttons = tuple((Button(_title(ctx, c), payload=f"c:{c.slug}"),) for c in open_now)
        outcome.say(f"{greeting}\n\n{ctx.t('start.choose')}", buttons=buttons)
    elif next_opening is not None:
        outcome.say(
            f"{greeting}\n\n{ctx.t('start.none_open_next', opens=_when(ctx, next_opening))}"
        )
    else:
        outcome.say(f"{greeting}\n\n{ctx.t('start.none_open')}")


async def choose(ctx: FlowContext, outcome: Outcome, slug: str) -> None:
    """A consultation button from the /start list."""
    consultation = await ctx.uow.consultations.by_slug(slug)
    if consultation is None:
        outcome.ack(ctx.event.button_ack_ref, ctx.t("button.stale"), alert=True)
        return
    outcome.ack(ctx.event.button_ack_ref)
    await open_consultation(ctx, outcome, consultation)


async def open_consultation(ctx: FlowContext, outcome: Outcome, consultation: Consultation) -> None:
    """Show the intro and ask for consent, resume, or offer to review finished answers."""
    rounds = await ctx.uow.consultations.rounds(consultation.id)
    state = rules.round_state(rounds, ctx.now)
    if state.status != "open":
        _say_not_open(ctx, outcome, consultation, state)
        return
    participation = await ctx.uow.participations.find(consultation.id, ctx.participant.id)
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
    _set_active(ctx, participation)
    if participation.status == ParticipationStatus.ANSWERING:
        outcome.say(ctx.t("consultation.welcome_back", title=_title(ctx, consultation)))
        await ask_next(ctx, outcome, participation)
        return
    if participation.status == ParticipationStatus.COMPLETED:
        await show_summary(ctx, outcome, participation, heading="summary.already_answered")
        return
    questions = await ctx.uow.consultations.questions(consultation.id)
    count = len(rules.applicable(questions, {}))
    assert state.round is not None
    outcome.say(
        ctx.t(
            "consultation.intro",
            title=_title(ctx, consultation),
            purpose=rules.pick(consultation.purpose, ctx.t.language),
            decided=rules.pick(consultation.basis["decided"], ctx.t.language),
            influence=rules.pick(consultation.basis["influence"], ctx.t.language),
            decides=rules.pick(consultation.basis["decides"], ctx.t.language),
            deadline=_when(ctx, state.round.closes_at),
            count=count,
            minutes=max(1, math.ceil(count * SECONDS_PER_QUESTION / 60)),
            results=rules.pick(consultation.results, ctx.t.language),
            organiser=consultation.organiser.get("name", ""),
            contact=consultation.organiser.get("contact", ""),
        )
    )
    outcome.say(
        ctx.t("consultation.consent"),
        buttons=(
            (Button(ctx.t("consent.yes"), payload=f"ok:{participation.id}:y"),),
            (Button(ctx.t("consent.no"), payload=f"ok:{participation.id}:n"),),
        ),
    )


async def consent(
    ctx: FlowContext, outcome: Outcome, participation: Participation, given: bool
) -> None:
    """Record explicit consent (then ask the first question) or a refusal (then stop)."""
    consultation, _questions, _answers = await _load(ctx, participation)
    outcome.ack(ctx.event.button_ack_ref)
    if participation.status not in (ParticipationStatus.INVITED, ParticipationStatus.DECLINED):
        _stale(ctx, outcome)
        return
    if not await _round_is_open(ctx, outcome, consultation):
        return
    participation.updated_at = ctx.now
    choice = ctx.t("consent.given") if given else ctx.t("consent.refused")
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, f"{ctx.t('consultation.consent')}\n\n{choice}")
    if not given:
        participation.status = ParticipationStatus.DECLINED
        participation.declined_at = ctx.now
        _set_active(ctx, None)
        outcome.say(ctx.t("consultation.declined"))
        return
    participation.status = ParticipationStatus.ANSWERING
    participation.consent_at = ctx.now
    participation.declined_at = None
    await ask_next(ctx, outcome, participation)


def _stale(ctx: FlowContext, outcome: Outcome) -> None:
    outcome.ack(ctx.event.button_ack_ref, ctx.t("button.stale"), alert=True)


# -- asking ------------------------------------------------------------------------------------


async def ask_next(ctx: FlowContext, outcome: Outcome, participation: Participation) -> None:
    """Ask the next unanswered question, or finish."""
    _consultation, questions, answers = await _load(ctx, participation)
    question = rules.next_unanswered(questions, answers)
    if question is None:
        await finish(ctx, outcome, participation)
        return
    ask(ctx, outcome, participation, question, questions, answers)


def _question_text(
    ctx: FlowContext, question: Question, questions: list[Question], answers: dict[int, Answer]
) -> str:
    position, total = rules.progress(questions, answers, question)
    text = f"{position}/{total} · {rules.pick(question.text, ctx.t.language)}"
    settings = question.settings
    hint = {
        "multiple": lambda: ctx.t("question.hint_multiple"),
        "scale": lambda: ctx.t(
            "question.hint_scale",
            low=rules.pick(settings["low"], ctx.t.language),
            high=rules.pick(settings["high"], ctx.t.language),
        ),
        "number": lambda: ctx.t("question.hint_number", min=settings["min"], max=settings["max"]),
        "postcode": lambda: ctx.t("question.hint_postcode"),
        "text": lambda: ctx.t("question.hint_text", max=settings["max_length"]),
        "idea": lambda: ctx.t("question.hint_idea", max=settings["max_length"]),
    }.get(question.kind)
    return f"{text}\n\n{hint()}" if hint else text


def ask(
    ctx: FlowContext,
    outcome: Outcome,
    participation: Participation,
    question: Question,
    questions: list[Question],
    answers: dict[int, Answer],
) -> None:
    """Send one question with its buttons; remember which message asked it."""
    participation.current_question_id = question.id
    participation.pending_selection = (
        list(answers[question.id].value)
        if question.kind == "multiple"
        and question.id in answers
        and not answers[question.id].skipped
        else []
    )
    text = _question_text(ctx, question, questions, answers)
    if question.id in answers:
        text += "\n\n" + ctx.t(
            "question.current_answer", answer=show_answer(ctx, question, answers[question.id])
        )
    buttons = _question_buttons(ctx, participation, question, questions, answers)

    def remember(outbox_id: int) -> None:
        participation.question_message_id = outbox_id

    outcome.say(text, buttons=buttons, on_queued=remember)


def _question_buttons(
    ctx: FlowContext,
    participation: Participation,
    question: Question,
    questions: list[Question],
    answers: dict[int, Answer],
) -> Buttons:
    prefix = f"{participation.id}:{question.id}"
    keys = rules.option_keys(question)
    yes, no = ctx.t("answer.yes"), ctx.t("answer.no")
    rows: list[tuple[Button, ...]] = []
    if question.kind in ("single", "district"):
        rows = [
            (
                Button(
                    rules.option_label(question, key, ctx.t.language, yes, no),
                    payload=f"a:{prefix}:{index}",
                ),
            )
            for index, key in enumerate(keys)
        ]
    elif question.kind in ("yesno", "scale"):
        rows = [
            tuple(
                Button(
                    rules.option_label(question, key, ctx.t.language, yes, no),
                    payload=f"a:{prefix}:{index}",
                )
                for index, key in enumerate(keys)
            )
        ]
    elif question.kind == "multiple":
        rows = [
            (
                Button(
                    ("☑ " if key in participation.pending_selection else "☐ ")
                    + rules.option_label(question, key, ctx.t.language, yes, no),
                    payload=f"t:{prefix}:{index}",
                ),
            )
            for index, key in enumerate(keys)
        ]
        rows.append((Button(ctx.t("question.done"), payload=f"d:{prefix}"),))
    navigation: list[Button] = []
    if rules.previous(questions, answers, question) is not None:
        navigation.append(Button(ctx.t("question.back"), payload=f"b:{prefix}"))
    if question.optional:
        navigation.append(Button(ctx.t("question.skip"), payload=f"s:{prefix}"))
    if navigation:
        rows.append(tuple(navigation))
    return tuple(rows)


# -- answering ---------------------------------------------------------------------------------


async def _current(
    ctx: FlowContext, outcome: Outcome, participation_id: str, question_id: str
) -> tuple[Participation, Consultation, list[Question], dict[int, Answer], Question] | None:
    """Resolve a question button; None (after a polite answer) if it is stale or foreign."""
    participation = await own_participation(ctx, participation_id)
    if (
        participation is None
        or participation.status
        not in (ParticipationStatus.ANSWERING, ParticipationStatus.COMPLETED)
        or str(participation.current_question_id) != question_id
    ):
        _stale(ctx, outcome)
        return None
    consultation, questions, answers = await _load(ctx, participation)
    question = next((q for q in questions if q.id == participation.current_question_id), None)
    if question is None:
        _stale(ctx, outcome)
        return None
    if not await _round_is_open(ctx, outcome, consultation):
        outcome.ack(ctx.event.button_ack_ref)
        return None
    _set_active(ctx, participation)
    return participation, consultation, questions, answers, question


async def press(ctx: FlowContext, outcome: Outcome, action: str, parts: list[str]) -> None:
    """Handle a question button: a: answer, t: tick, d: done, s: skip, b: back."""
    expected = 3 if action in ("a", "t") else 2
    if len(parts) != expected:
        _stale(ctx, outcome)
        return
    resolved = await _current(ctx, outcome, parts[0], parts[1])
    if resolved is None:
        return
    participation, _consultation, questions, answers, question = resolved
    keys = rules.option_keys(question)
    if action in ("a", "t"):
        if not parts[2].isdigit() or int(parts[2]) >= len(keys):
            _stale(ctx, outcome)
            return
        key = keys[int(parts[2])]
        if action == "a" and question.kind in CHOICE_KINDS:
            outcome.ack(ctx.event.button_ack_ref)
            await _store(ctx, outcome, participation, question, questions, answers, key)
        elif action == "t" and question.kind == "multiple":
            selection = list(participation.pending_selection)
            selection = (
                [k for k in selection if k != key] if key in selection else [*selection, key]
            )
            participation.pending_selection = [k for k in keys if k in selection]
            outcome.ack(ctx.event.button_ack_ref)
            if ctx.event.button_message_ref is not None:
                outcome.edit(
                    ctx.event.button_message_ref,
                    _question_text(ctx, question, questions, answers),
                    _question_buttons(ctx, participation, question, questions, answers),
                )
        else:
            _stale(ctx, outcome)
    elif action == "d" and question.kind == "multiple":
        if not participation.pending_selection and not question.optional:
            outcome.ack(ctx.event.button_ack_ref, ctx.t("answer.choose_one"), alert=True)
            return
        outcome.ack(ctx.event.button_ack_ref)
        value = list(participation.pending_selection) or None
        await _store(ctx, outcome, participation, question, questions, answers, value)
    elif action == "s" and question.optional:
        outcome.ack(ctx.event.button_ack_ref)
        await _store(ctx, outcome, participation, question, questions, answers, None)
    elif action == "b":
        target = rules.previous(questions, answers, question)
        if target is None:
            _stale(ctx, outcome)
            return
        outcome.ack(ctx.event.button_ack_ref)
        await _close_question_message(
            ctx, outcome, participation, question, questions, answers, ctx.t("question.went_back")
        )
        ask(ctx, outcome, participation, target, questions, answers)
    else:
        _stale(ctx, outcome)


async def typed(ctx: FlowContext, outcome: Outcome) -> bool:
    """Treat typed text as the answer to the current question; False if no question waits."""
    participation = await active_participation(ctx)
    if (
        participation is None
        or participation.status
        not in (ParticipationStatus.ANSWERING, ParticipationStatus.COMPLETED)
        or participation.current_question_id is None
    ):
        return False
    consultation, questions, answers = await _load(ctx, participation)
    question = next((q for q in questions if q.id == participation.current_question_id), None)
    if question is None:
        return False
    if question.kind not in TYPED_KINDS:
        outcome.say(ctx.t("answer.use_buttons"))
        return True
    if not await _round_is_open(ctx, outcome, consultation):
        return True
    reading = rules.read_typed(question, ctx.event.text)
    if reading.error is not None:
        outcome.say(ctx.t(reading.error, **(reading.params or {})))
        return True
    await _store(ctx, outcome, participation, question, questions, answers, reading.value)
    return True


async def _close_question_message(
    ctx: FlowContext,
    outcome: Outcome,
    participation: Participation,
    question: Question,
    questions: list[Question],
    answers: dict[int, Answer],
    footer: str,
) -> None:
    """Replace the question's message with the question and a footer, without buttons.

    An old message can then never answer twice.
    """
    reference = ctx.event.button_message_ref
    if reference is None and participation.question_message_id is not None:
        asked = await ctx.uow.outbox.get(participation.question_message_id)
        reference = asked.external_message_id if asked is not None else None
    if reference is not None:
        outcome.edit(reference, f"{_question_text(ctx, question, questions, answers)}\n\n{footer}")


async def _store(
    ctx: FlowContext,
    outcome: Outcome,
    participation: Participation,
    question: Question,
    questions: list[Question],
    answers: dict[int, Answer],
    value: object,
) -> None:
    """Store (or change) an answer, show it on the question's message, and move on."""
    previous = answers.get(question.id)
    if previous is not None:
        await ctx.uow.participations.delete_answer(previous)
    answer = Answer(
        participation_id=participation.id,
        question_id=question.id,
        value=value,
        skipped=value is None,
        # Too short to tell: the language of the conversation, rather than a wild guess.
        language=(ctx.detect_language(str(value)) or ctx.t.language)
        if question.kind in ("text", "idea") and value is not None
        else None,
        answered_at=ctx.now,
    )
    await ctx.uow.participations.save_answer(answer)
    answers = {**answers, question.id: answer}
    await _close_question_message(
        ctx,
        outcome,
        participation,
        question,
        questions,
        answers,
        "✅ " + show_answer(ctx, question, answer),
    )
    # A changed answer can make later conditional questions irrelevant; drop their answers.
    for stale in rules.no_longer_applicable(questions, answers):
        await ctx.uow.participations.delete_answer(stale)
    participation.pending_selection = []
    participation.current_question_id = None
    participation.updated_at = ctx.now
    await ask_next(ctx, outcome, participation)


# -- finishing and reviewing -------------------------------------------------------------------


async def finish(ctx: FlowContext, outcome: Outcome, participation: Participation) -> None:
    """Thank the participant, sum up, and ask whether they want to hear back (first time)."""
    participation.current_question_id = None
    if participation.status == ParticipationStatus.COMPLETED:
        await show_summary(ctx, outcome, participation, heading="summary.updated")
        return
    participation.status = ParticipationStatus.COMPLETED
    participation.completed_at = ctx.now
    await show_summary(ctx, outcome, participation, heading="summary.thanks")
    outcome.say(
        ctx.t("summary.hear_back"),
        buttons=(
            (
                Button(ctx.t("answer.yes"), payload=f"h:{participation.id}:y"),
                Button(ctx.t("answer.no"), payload=f"h:{participation.id}:n"),
            ),
        ),
    )


async def show_summary(
    ctx: FlowContext, outcome: Outcome, participation: Participation, heading: str
) -> None:
    """List the participant's answers, with a button to change one while the round is open."""
    consultation, questions, answers = await _load(ctx, participation)
    lines = [
        f"• {rules.pick(q.text, ctx.t.language)}\n  {show_answer(ctx, q, answers[q.id])}"
        for q in rules.applicable(questions, answers)
        if q.id in answers
    ]
    text = ctx.t(heading, title=_title(ctx, consultation)) + "\n\n" + "\n".join(lines)
    text += "\n\n" + ctx.t(
        "summary.results", results=rules.pick(consultation.results, ctx.t.language)
    )
    open_now = (
        rules.round_state(await ctx.uow.consultations.rounds(consultation.id), ctx.now).status
        == "open"
    )
    buttons: Buttons = ()
    if open_now:
        buttons = ((Button(ctx.t("summary.change"), payload=f"r:{participation.id}"),),)
    outcome.say(rules.shorten(text, 4000), buttons=buttons)


async def hear_back(
    ctx: FlowContext, outcome: Outcome, participation: Participation, wanted: bool
) -> None:
    """Record whether the participant wants to hear what happens with the consultation."""
    outcome.ack(ctx.event.button_ack_ref)
    participation.hear_back = wanted
    participation.updated_at = ctx.now
    answer = ctx.t("summary.hear_back_yes") if wanted else ctx.t("summary.hear_back_no")
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, f"{ctx.t('summary.hear_back')}\n\n✅ {answer}")
    else:
        outcome.say(answer)


async def review(ctx: FlowContext, outcome: Outcome, participation: Participation) -> None:
    """Offer each answered question as a button, to change it."""
    consultation, questions, answers = await _load(ctx, participation)
    outcome.ack(ctx.event.button_ack_ref)
    if not await _round_is_open(ctx, outcome, consultation):
        return
    buttons = tuple(
        (
            Button(
                rules.shorten(rules.pick(q.text, ctx.t.language), 40),
                payload=f"e:{participation.id}:{q.id}",
            ),
        )
        for q in rules.applicable(questions, answers)
    )
    outcome.say(ctx.t("summary.which"), buttons=buttons)


async def edit_answer(
    ctx: FlowContext, outcome: Outcome, participation: Participation, question_id: str
) -> None:
    """Ask one question again so its answer can be changed."""
    consultation, questions, answers = await _load(ctx, participation)
    question = next(
        (q for q in rules.applicable(questions, answers) if str(q.id) == question_id), None
    )
    if question is None or participation.status != ParticipationStatus.COMPLETED:
        _stale(ctx, outcome)
        return
    outcome.ack(ctx.event.button_ack_ref)
    if not await _round_is_open(ctx, outcome, consultation):
        return
    _set_active(ctx, participation)
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, ctx.t("summary.which"))
    ask(ctx, outcome, participation, question, questions, answers)
