"""Where you stand, for a citizen who wrote some of the statements and voted on all the rest."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.app import BorgerDialog
from scheduler.jobs import refresh_opinion_groups
from storage.models import Participation, ParticipationStatus, Vote, VoteEvent
from tests.citizens import import_consultation
from tests.fake_telegram import FakeBot
from tests.ideas import ideas_source, join, statements, uow_of, vote_through, write_statement

ANNAS = (
    "Der skal males en fodgængerovergang ved bageren",
    "Skolen skal have en cykelparkering med tag",
)


async def seed_two_camps(app: BorgerDialog, people: int = 24) -> None:
    """Voters who agree or disagree in two camps on every statement, stored directly."""
    now = datetime.now(UTC)
    all_statements = await statements(app)
    async with uow_of(app)() as uow:
        consultation = await uow.consultations.by_slug("skolevej")
        assert consultation is not None
        for person in range(people):
            participant = await uow.participants.get_or_create("telegram", str(90000 + person), now)
            participation = Participation(
                consultation_id=consultation.id,
                participant_id=participant.id,
                pseudonym=f"p-seed{person:04d}",
                status=ParticipationStatus.COMPLETED,
                consent_at=now,
                started_at=now,
                updated_at=now,
            )
            await uow.participations.add(participation)
            for index, statement in enumerate(all_statements):
                value = 1 if (index % 2 == 0) == (person % 2 == 0) else -1
                vote = {"statement_id": statement.id, "participation_id": participation.id}
                await uow.ideas.add_vote(Vote(**vote, value=value, created_at=now, updated_at=now))
                await uow.ideas.add_event(VoteEvent(**vote, value=value, at=now))
        await uow.commit()


async def test_an_author_is_counted_against_what_they_can_vote_on_and_placed(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, ideas_source())
    anna = await join(fake_bot, 501)
    for text in ANNAS:
        await write_statement(anna, text)
        await anna.tap("✅ Send")
    assert len(await statements(app)) == 6
    await seed_two_camps(app)
    assert await refresh_opinion_groups(uow_of(app), lambda: datetime.now(UTC)) == ["skolevej"]

    await anna.tap("🗳 Stem om udsagn")
    assert len(await vote_through(anna)) == 4
    await anna.tap("📊 Hvor står jeg?")
    standing = anna.last().text or ""
    assert "Du har stemt om 4 af 4 udsagn." in standing
    assert "Stem om nogle flere" not in standing
    assert "Du ligger tættest på gruppe" in standing
