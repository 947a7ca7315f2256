"""Staff decide on a statement; its author and the voters who asked hear it where they took part."""

from __future__ import annotations

from collections.abc import Callable

from handlers import questionnaire
from handlers.context import Texts, language_of
from handlers.email import WEB_CHANNEL
from handlers.events import Button, ChatAddress, Reply
from handlers.ideas.rules import short, statement_text
from handlers.payloads import CardAction, CardButton
from storage.email import EMAIL_CHANNEL
from storage.models import Decision, Participation, Statement
from storage.uow import UnitOfWork

REASON_LIMIT = 500


async def decision_messages(
    uow: UnitOfWork, statement: Statement, texts_in: Callable[[str | None], Texts]
) -> list[tuple[ChatAddress, Reply]]:
    """The news of a statement's decision for its author and for voters who asked to hear back.

    The author hears unless they said no; a voter only if they said yes. Nobody who said /stop
    or cannot be reached is written to.
    """
    consultation = await uow.consultations.get(statement.consultation_id)
    assert consultation is not None
    assert statement.decision is not None
    merged = (
        await uow.ideas.statement(statement.merged_into_id) if statement.merged_into_id else None
    )
    recipients: dict[int, tuple[Participation, str]] = {}
    if statement.participation_id is not None:
        author = await uow.participations.get(statement.participation_id)
        if author is not None and author.hear_back is not False:
            recipients[author.id] = (author, "ideas.decision.yours")
    for voter in await uow.ideas.voters(statement.id):
        if voter.hear_back is True:
            recipients.setdefault(voter.id, (voter, "ideas.decision.voted"))
    messages: list[tuple[ChatAddress, Reply]] = []
    for participation, relation in recipients.values():
        participant = await uow.participants.by_id(participation.participant_id)
        if (
            participant is None
            or participant.unreachable_at is not None
            or participant.stopped_at is not None
        ):
            continue
        t = texts_in(language_of(participant))
        decision = t(
            f"ideas.decision.{statement.decision}",
            other=short(statement_text(merged, t.language), 120) if merged else "",
        )
        text = t(
            "ideas.decision.message",
            title=questionnaire.pick(consultation.title, t.language),
            text=questionnaire.shorten(statement_text(statement, t.language), 600),
            decision=decision,
            relation=t(relation),
        )
        if statement.decision_reason:
            text += "\n\n" + t("ideas.decision.why", reason=statement.decision_reason)
        buttons: tuple[tuple[Button, ...], ...] = ()
        if statement.decision == Decision.ACCEPTED and statement.wants_volunteers:
            buttons = (
                (
                    Button(
                        t("ideas.button.help"),
                        payload=CardButton(statement.id, CardAction.HELP).wire,
                    ),
                ),
            )
        messages.append(
            (ChatAddress(participant.channel, participant.chat_id), Reply(text, buttons=buttons))
        )
        if participant.channel == WEB_CHANNEL:
            # A confirmed address hears it too; the help button only works in the chat.
            given = await uow.email.of_participant(participant.id)
            if given is not None and given.confirmed_at is not None:
                messages.append((ChatAddress(EMAIL_CHANNEL, str(given.id)), Reply(text)))
    return messages
