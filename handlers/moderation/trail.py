"""The audit trail as people read it: the columns and one entry's row, the same in the CLI's
export and the dashboard's view and download."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from storage.models import ModerationLogEntry

# Who the audit trail names for what is done at the terminal: the person is not known.
CLI_ACTOR = "staff (command line)"

TRAIL_COLUMNS = (
    "at",
    "item",
    "consultation",
    "event",
    "actor",
    "author",
    "before",
    "after",
    "reason",
    "flags",
)


def trail_row(entry: ModerationLogEntry, zone: ZoneInfo) -> dict[str, object]:
    """An entry with its time in the installation's zone; pseudonyms only, never text."""
    return {
        "at": entry.at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "item": entry.item_id,
        "consultation": entry.consultation,
        "event": entry.event,
        "actor": entry.actor,
        "author": entry.author,
        "before": entry.before or "",
        "after": entry.after or "",
        "reason": entry.reason or "",
        "flags": " ".join(entry.flags),
    }
