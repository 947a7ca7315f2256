"""The participant's own data: /mydata, /forget and /stop."""

from __future__ import annotations

import json

from handlers import questionnaire as rules
from handlers.common import stale_button
from handlers.consultation.sheet import active_participation, show_answer
from handlers.context import FlowContext
from handlers.events import Button, Outcome
from handlers.ideas.rules import statement_text
from handlers.moderation.intake import close_withdrawn, erase_card
from handlers.payloads import ForgetAnswer
from handlers.questions import all_kinds, kind_of
from storage.models import ItemStatus, Visibility

# Set in the participant's state while /forget waits for its answer: "erase everything" erases
# only then, never from a button made up or kept from before (nor "keep" undo anything).
FORGET_ASKED = "forget_asked"


async def mydata(ctx: FlowContext, outcome: Outcome) -> None:
    """Show everything stored about the participant, as a message and as a JSON file."""
    participant = ctx.participant
    record: dict[str, object] = {
        "channel": participant.channel,
        "chat": participant.chat_id,
        "language": participant.language,
        "first_contact": participant.created_at.isoformat(),
        "last_contact": participant.last_seen_at.isoformat(),
        "messages_handled": participant.events_applied,
        "consultations": [],
    }
    lines: list[str] = []
    consultations: list[dict[str, object]] = []
    for participation in await ctx.uow.participations.of_participant(participant.id):
        consultation = await ctx.uow.consultations.get(participation.consultation_id)
        assert consultation is not None
        questions = await ctx.uow.consultations.questions(consultation.id, include_archived=True)
        answers = rules.answers_by_question(await ctx.uow.participations.answers(participation.id))
        title = rules.pick(consultation.title, ctx.t.language)
        status = ctx.t(f"status.{participation.status}")
        lines.append(f"\n{title} – {status}")
        answered = []
        for question in questions:
            answer = answers.get(question.id)
            if answer is None:
                continue
            shown = show_answer(ctx, question, answer)
            lines.append(
                f"• {rules.shorten(rules.pick(question.text, ctx.t.language), 60)}: {shown}"
            )
            typed = kind_of(question).free_text and isinstance(answer.value, str)
            answered.append(
                {
                    "question": rules.pick(question.text, ctx.t.language),
                    # As the citizen chose it (a typed text whole, not shortened as in the
                    # message); the stored value too (an option's id, a number).
                    "answer": answer.value if typed and not answer.skipped else shown,
                    "stored_as": answer.value,
                    "skipped": answer.skipped,
                    "language": answer.language,
                    "answered_at": answer.answered_at.isoformat(),
                }
            )
        written = await ctx.uow.ideas.of_participation(participation.id)
        votes = await ctx.uow.ideas.votes_of(participation.id)
        reports = await ctx.uow.moderation.reports_by(participation.id)
        if written or votes:
            lines.append(ctx.t("mydata.ideas", statements=len(written), votes=len(votes)))
        if reports:
            lines.append(ctx.t("mydata.reports", reports=len(reports)))
        offers = await ctx.uow.ideas.volunteered(participation.id)
        if offers:
            lines.append(ctx.t("mydata.volunteered", offers=len(offers)))
        consultations.append(
            {
                "consultation": consultation.slug,
                "title": title,
                "status": participation.status,
                "consent_given_at": participation.consent_at.isoformat()
                if participation.consent_at
                else None,
                "declined_at": participation.declined_at.isoformat()
                if participation.declined_at
                else None,
                "completed_at": participation.completed_at.isoformat()
                if participation.completed_at
                else None,
                "wants_to_hear_back": participation.hear_back,
                "answers": answered,
                "statements": [
                    {
                        "number": statement.number,
                        "text": statement_text(statement, statement.language),
                        "shown": statement.visibility,
                        "written_at": statement.created_at.isoformat(),
                    }
                    for statement in written
                ],
                "votes": [
                    {
                        "statement": statement.number,
                        "text": statement_text(statement, ctx.t.language),
                        "vote": {1: "agree", -1: "disagree", 0: "pass"}[vote.value],
                        "voted_at": vote.updated_at.isoformat(),
                    }
                    for vote, statement in votes
                ],
                "reports": [
                    {
                        "statement": reported.number if reported is not None else None,
                        "reason": report.reason,
                        "reported_at": report.created_at.isoformat(),
                    }
                    for report, reported in reports
                ],
                "offers_to_help": [
                    {
                        "statement": statement.number,
                        "text": statement_text(statement, ctx.t.language),
                        "offered_at": offer.created_at.isoformat(),
                    }
                    for offer, statement in offers
                ],
                "wants_new_statements": participation.notify_statements_at is not None,
            }
        )
    record["consultations"] = consultations
    given = await ctx.uow.email.of_participant(participant.id)
    if given is not None:
        confirmed = given.confirmed_at is not None
        record["email"] = {
            "address": given.address,
            "confirmed_at": given.confirmed_at.isoformat() if given.confirmed_at else None,
            "given_at": given.created_at.isoformat(),
        }
        key = "mydata.email_confirmed" if confirmed else "mydata.email_unconfirmed"
        lines.append("\n" + ctx.t(key, address=given.address))
    language = (
        ctx.t(f"language.name.{participant.language}")
        if participant.language
        else ctx.t("mydata.language_automatic")
    )
    body = ctx.t("mydata.summary", language=language, count=participant.events_applied)
    body += "".join(f"\n{line}" for line in lines) if lines else "\n\n" + ctx.t("mydata.none")
    outcome.say(rules.shorten(body + "\n\n" + ctx.t("mydata.footer"), 4000))
    outcome.send_file(
        "mine-data.json" if ctx.t.language == "da" else "my-data.json",
        json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8"),
        caption=ctx.t("mydata.file_caption"),
    )


def forget(ctx: FlowContext, outcome: Outcome) -> None:
    """Explain what /forget erases and ask for confirmation."""
    ctx.participant.state = {**ctx.participant.state, FORGET_ASKED: True}
    outcome.say(
        ctx.t("forget.confirm"),
        buttons=(
            (
                Button(ctx.t("forget.yes"), payload=ForgetAnswer(erase=True).wire),
                Button(ctx.t("forget.no"), payload=ForgetAnswer(erase=False).wire),
            ),
        ),
    )


async def forget_confirmed(ctx: FlowContext, outcome: Outcome, confirmed: bool) -> None:
    """Erase the participant's data (ideas stay, anonymised), or leave everything as it was."""
    if not ctx.participant.state.get(FORGET_ASKED):
        stale_button(ctx, outcome)
        return
    outcome.ack(ctx.event.button_ack_ref)
    if not confirmed:
        ctx.participant.state = {
            key: value for key, value in ctx.participant.state.items() if key != FORGET_ASKED
        }
        if ctx.event.button_message_ref is not None:
            outcome.edit(ctx.event.button_message_ref, ctx.t("forget.kept"))
        return
    # Statements others were shown stay, like ideas, without their author; votes and volunteer
    # offers go. One nobody was shown (held for a moderator, or hidden) goes too: it was never
    # shared, and a moderator must not publish it after its author asked to be forgotten.
    statements = 0
    for participation in await ctx.uow.participations.of_participant(ctx.participant.id):
        written = await ctx.uow.ideas.of_participation(participation.id)
        unshown = {s.id: s for s in written if s.visibility != Visibility.VISIBLE}
        statements += len(written) - len(unshown)
        for item in await ctx.uow.moderation.of_participation(participation.id):
            if item.answer_id is not None:
                # The answer goes; so does its text on the moderators' card, and a decision
                # still waiting on it is no longer asked for.
                if item.status == ItemStatus.WAITING:
                    answer = await ctx.uow.participations.answer(item.answer_id)
                    if answer is not None:
                        await close_withdrawn(ctx, item, answer.visibility)
                await erase_card(ctx, outcome, item)
            elif item.statement_id in unshown:
                if item.status == ItemStatus.WAITING:
                    await close_withdrawn(ctx, item, unshown[item.statement_id].visibility)
                await erase_card(ctx, outcome, item)
        await ctx.uow.ideas.delete_statements(list(unshown.values()))
    # Ideas are published statements: after /forget they stay, without any link to the author.
    published = {kind.name for kind in all_kinds() if kind.published}
    anonymised = statements + await ctx.uow.participations.erase_participant(
        ctx.participant.id, published
    )
    await ctx.uow.email.erase_participant(ctx.participant.id)
    await ctx.uow.participants.delete(ctx.participant)
    outcome.erased = True
    done = ctx.t("forget.done")
    if anonymised:
        done += "\n\n" + ctx.t.n("forget.ideas_anonymised", anonymised)
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, done)
    else:
        outcome.say(done)


async def stop(ctx: FlowContext, outcome: Outcome) -> None:
    """No more messages the participant did not ask for, until they write again."""
    ctx.participant.stopped_at = ctx.now
    participation = await active_participation(ctx)
    outcome.say(ctx.t("stop.done") + ("\n\n" + ctx.t("stop.resume") if participation else ""))
