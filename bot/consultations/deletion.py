"""Delete a consultation with everything citizens gave it, when its purpose is served.

Answers, statements and votes are kept "until the consultation is deleted" (README, what is
kept): this is that deletion, one unit of work for the command line and the dashboard alike.
The audit trail stays (it names people only by pseudonym and holds no text), and gets the
deletion itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from handlers.consultation.sheet import ACTIVE
from handlers.context import Texts
from handlers.events import ChatAddress, Reply
from handlers.ideas.common import COMPOSING, DRAFT
from handlers.ideas.rules import ideas_state
from handlers.moderation.intake import posted_card
from handlers.questionnaire import round_state
from storage.models import Consultation, Participation, PostState, Round
from storage.uow import UnitOfWork


class StillOpen(Exception):
    """People are taking part right now: a round or the ideas phase is open, with participants."""


@dataclass(frozen=True)
class DeletionReport:
    """What a deletion took with it."""

    slug: str
    participations: int
    answers: int
    statements: int
    votes: int
    # Participants who took part here and nowhere else: their chat with the bot is forgotten.
    forgotten: int
    # The chats with queued edits (the moderators' cards), to deliver once committed.
    chats: frozenset[ChatAddress] = frozenset()

    @property
    def counts_code(self) -> str:
        """What went, as the audit trail keeps it (codes, never text): "p12 a80 s5 v30 f9" for
        participations, answers, statements, votes and forgotten citizens."""
        return (
            f"p{self.participations} a{self.answers} s{self.statements} v{self.votes} "
            f"f{self.forgotten}"
        )


def is_open(consultation: Consultation, rounds: list[Round], now: datetime) -> bool:
    """Whether citizens can answer or write statements now."""
    return "open" in (ideas_state(consultation, now), round_state(rounds, now).status)


async def delete_consultation(
    uow: UnitOfWork, consultation: Consultation, now: datetime, moderators: Texts
) -> DeletionReport:
    """Delete a consultation and its citizens' contributions (the caller commits).

    Refused (StillOpen) while it is open and someone takes part: their conversation would end
    mid-question. One opened by mistake, without participants, may go at once. Cards in the
    moderators' chat lose their text, as at /forget; ``moderators`` is that chat's language.
    """
    await uow.consultations.lock(consultation.id)
    participations, answers = await uow.participations.count_in(consultation.id)
    rounds = await uow.consultations.rounds(consultation.id)
    if participations and is_open(consultation, rounds, now):
        raise StillOpen(consultation.slug)
    statements, votes = await uow.ideas.count_in(consultation.id)
    chats: set[ChatAddress] = set()
    for item in await uow.moderation.carded_of_consultation(consultation.id):
        erased = Reply(moderators("moderation.card.consultation_deleted", id=item.id))
        assert item.card_message_id is not None
        if await uow.outbox.rewrite_unsent(item.card_message_id, erased.to_payload(), card=True):
            continue
        posted = await posted_card(uow, item)
        if posted is not None:
            address, ref = posted
            edit = Reply(erased.text, edit_ref=ref)
            await uow.outbox.add(address.channel, address.chat_id, edit.to_payload(), now)
            chats.add(address)
    # A broadcast under way stops: what its posts have not sent yet quotes contributions
    # (the results' most agreed statements) and would go out without a consultation.
    states = (PostState.PLANNED, PostState.SENDING, PostState.SENT, PostState.FAILED)
    posts = await uow.plan.of_consultation(consultation.id, states)
    await uow.outbox.drop_pending_of_posts([post.id for post in posts])
    here = await uow.participations.of_consultation(consultation.id)
    forgotten = await uow.participations.only_in(consultation.id)
    await _leave_conversations(uow, here, {p.id for p in forgotten})
    slug = consultation.slug
    await uow.consultations.delete(consultation)
    # After the cascade: a participant's e-mail address and chat go once nothing is left of
    # them here, as at /forget (the web transcript holds their answers).
    for participant in forgotten:
        await uow.email.erase_participant(participant.id)
        await uow.participants.delete(participant)
    return DeletionReport(
        slug, participations, answers, statements, votes, len(forgotten), frozenset(chats)
    )


async def _leave_conversations(
    uow: UnitOfWork, here: list[Participation], forgotten: set[int]
) -> None:
    """Take the deleted consultation out of the conversation state of those who go on
    elsewhere: a statement half written in it (the draft) goes too, and so does a web
    participant's transcript, which holds what they answered here (one conversation for
    every consultation: it cannot be cut by consultation)."""
    ids = {participation.id for participation in here}
    for participant_id in {p.participant_id for p in here} - forgotten:
        participant = await uow.participants.by_id(participant_id)
        if participant is None:
            continue
        await uow.web_messages.erase_transcript(participant.channel, participant.chat_id)
        state = dict(participant.state)
        if state.get(COMPOSING) in ids:
            state.pop(COMPOSING, None)
            state.pop(DRAFT, None)
        if state.get(ACTIVE) in ids:
            state.pop(ACTIVE, None)
        if state != participant.state:
            await uow.participants.set_state(participant, state)
