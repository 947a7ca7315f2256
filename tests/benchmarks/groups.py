"""Benchmark: computing opinion groups, against reading the same votes from the database.

Run: ``.venv/bin/python -m tests.benchmarks.groups [--people 5000]``

A synthetic electorate of two camps (23 statements, 30 % unseen, 10 % noise) is stored in a
fresh SQLite database through the application's repositories. The baseline is what every
recomputation must do anyway — read the current votes (``IdeasRepository.current_votes``); the
measured part is ``compute_groups`` on those votes. Both are timed in the same run, best of three,
so the ratio means something on any machine. Peak memory of the computation is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from handlers.ideas.groups import compute_groups
from storage.database import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import (
    Consultation,
    Participation,
    ParticipationStatus,
    Statement,
    StatementOrigin,
    Vote,
)
from storage.uow import UnitOfWorkFactory
from tests.opinions import electorate


async def measure(people: int) -> dict[str, float]:
    votes, _ = electorate(people, seed=1)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}")
        await upgrade(engine)
        uow = UnitOfWorkFactory(create_session_factory(engine))
        async with uow() as unit:
            consultation = await unit.consultations.add(
                Consultation(
                    slug="bench",
                    languages=["da"],
                    title={"da": "b"},
                    purpose={},
                    basis={},
                    target_group={},
                    citizen_role="co-design",
                    organiser={},
                    results={},
                    created_at=now,
                    updated_at=now,
                )
            )
            participant = await unit.participants.get_or_create("bench", "0", now)
            statements = {}
            for number in range(1, 24):
                statements[number] = await unit.ideas.add_statement(
                    Statement(
                        consultation_id=consultation.id,
                        number=number,
                        origin=StatementOrigin.STAFF,
                        text={"da": str(number)},
                        language="da",
                        created_at=now,
                    )
                )
            ids = {}
            for person in range(people):
                other = await unit.participants.get_or_create("bench", str(person + 1), now)
                ids[person] = (
                    await unit.participations.add(
                        Participation(
                            consultation_id=consultation.id,
                            participant_id=other.id,
                            pseudonym=f"b-{person}",
                            number=person,
                            status=ParticipationStatus.COMPLETED,
                            pending_selection=[],
                            started_at=now,
                            updated_at=now,
                        )
                    )
                ).id
            del participant
            for person, number, value in votes:
                await unit.ideas.add_vote(
                    Vote(
                        statement_id=statements[number].id,
                        participation_id=ids[person],
                        value=value,
                        created_at=now,
                        updated_at=now,
                    )
                )
            await unit.commit()
        read_times, compute_times = [], []
        loaded: list[tuple[int, int, int]] = []
        for _ in range(3):
            started = time.perf_counter()
            async with uow() as unit:
                loaded = await unit.ideas.current_votes(consultation.id)
            read_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            model = compute_groups(loaded)
            compute_times.append(time.perf_counter() - started)
        tracemalloc.start()
        compute_groups(loaded)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await engine.dispose()
    assert model is not None
    return {
        "people": people,
        "votes": len(loaded),
        "groups": len(model.centers),
        "read_votes_seconds": round(min(read_times), 3),
        "compute_groups_seconds": round(min(compute_times), 3),
        "compute_over_read": round(min(compute_times) / min(read_times), 2),
        "peak_memory_mb": round(peak / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(measure(arguments.people)), indent=2))


if __name__ == "__main__":
    main()
