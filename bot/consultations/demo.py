"""The demo: a realistic Danish consultation with every question kind, open from today."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.consultations.definition import parse_definition
from bot.consultations.importer import import_definition
from handlers.questionnaire import round_state
from storage.uow import UnitOfWork

DEMO_SLUG = "friluftsliv"
DEMO_OPEN_DAYS = 60
# Who the demo says runs it, so /privacy reads as it will for a real municipality.
DEMO_ORGANISATION = "Eksempel Kommune (demo)"
DEMO_PRIVACY_CONTACT = "databeskyttelse@eksempel-kommune.example"


def demo_settings(settings: Settings) -> Settings:
    """The settings with a sample data controller and contact where none are configured."""
    return settings.model_copy(
        update={
            "organisation_name": settings.organisation_name or DEMO_ORGANISATION,
            "privacy_contact": settings.privacy_contact or DEMO_PRIVACY_CONTACT,
        }
    )


def demo_source() -> str:
    """The annotated example file, shipped with the package (examples/ links to it)."""
    return (
        resources.files("bot.consultations")
        .joinpath("demo/friluftsliv.yaml")
        .read_text(encoding="utf-8")
    )


async def ensure_demo(uow: UnitOfWork, now: datetime, zone: ZoneInfo) -> bool:
    """Create the demo consultation, or reopen it if its round is over; True if it changed.

    Running the demo again leaves an open demo and its answers alone.
    """
    existing = await uow.consultations.by_slug(DEMO_SLUG)
    if existing is not None:
        state = round_state(await uow.consultations.rounds(existing.id), now)
        if state.status == "open":
            return False
    opens, closes = now - timedelta(days=1), now + timedelta(days=DEMO_OPEN_DAYS)
    # The file's own dates become the demo's, in its text too: the text is kept as the
    # consultation's file, and editing it in the dashboard must not move the round back.
    source = DEMO_DATES.sub(
        lambda found: (
            f"{found.group(1)}: {_local(opens if found.group(1) == 'opens' else closes, zone)}"
        ),
        demo_source(),
    )
    definition = parse_definition(source, zone)
    await import_definition(uow, definition, now)
    return True


# "opens: 2026-11-01 09:00" in the demo file, for the round and the ideas phase alike.
DEMO_DATES = re.compile(r"\b(opens|closes): \d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
