"""Pure rules of the content plan: times (with daylight saving), phases, repeats and audiences.

The same rules serve the content-plan sheet and the staff chat, so a post planned either way is
checked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from handlers.events import MAX_CAPTION_LENGTH, MAX_IMAGE_BYTES, MAX_TEXT_LENGTH, Phrase
from storage.models import OutboxStatus, PlannedPost

TIME_FORMAT = "%Y-%m-%d %H:%M"
# The years a time of a plan or a consultation file may fall in: near year 1 or 9999 a time
# overflows when shifted by a zone or a repeat, and one far from now is a typo anyway.
YEARS = (2000, 2999)
MAX_REPEATS = 52
# A post may be planned up to a year before or after the phase it follows.
MAX_OFFSET_MINUTES = 366 * 1440
# Telegram's chat ids fit in 52 bits (channels and groups are negative); statement numbers in 31.
MAX_CHAT_ID = 2**52
MAX_STATEMENT_NUMBER = 2**31 - 1

PHASE_EVENTS = ("opens", "closes", "ideas_opens", "ideas_closes")
# "round 1 closes - 2d", "runde 1 lukker -2 dage", "ideas opens + 3h"
_PHASE = re.compile(
    r"^\s*(?:(?:round|runde)\s*(?P<round>\d{1,4})\s+(?P<round_event>opens|closes|åbner|lukker)"
    r"|(?:ideas|idéer|ideer)\s+(?P<ideas_event>opens|closes|åbner|lukker))"
    r"\s*(?:(?P<sign>[+-])\s*(?P<amount>\d{1,9})\s*(?P<unit>[a-zæøå]+))?\s*$",
    re.IGNORECASE,
)
_UNITS = {
    "m": 1,
    "min": 1,
    "minut": 1,
    "minutter": 1,
    "minutes": 1,
    "h": 60,
    "t": 60,
    "hour": 60,
    "hours": 60,
    "time": 60,
    "timer": 60,
    "d": 1440,
    "day": 1440,
    "days": 1440,
    "dag": 1440,
    "dage": 1440,
}
_REPEAT = re.compile(
    r"^\s*(?P<every>daily|dagligt|weekly|ugentligt|every\s+(?P<days>\d{1,9})\s+days?|"
    r"hver\s+(?P<dage>\d{1,9})\.?\s+dag)\s*(?:x|×|\*)?\s*(?P<times>\d{1,9})\s*$",
    re.IGNORECASE,
)
SUBSCRIBER_AUDIENCES = {
    "everyone": "all",
    "alle": "all",
    "participants": "hear_back",
    "deltagere": "hear_back",
    "unfinished": "unfinished",
    "ufaerdige": "unfinished",
    "ufærdige": "unfinished",
}
CHANNEL_WORDS = {"channel", "kanal"}


class PlanError(ValueError):
    """A planning mistake, named for the person who planned: ``phrase`` is read in their
    language (the dashboard's and the staff chat's reader's; English on the command line).

    ``str()`` of it is only the phrase's key: flows cannot reach the catalogs, so whoever shows
    the mistake to a person reads ``phrase`` with that person's texts.
    """

    def __init__(self, phrase: Phrase) -> None:
        super().__init__(phrase.key)
        self.phrase = phrase


def local_to_utc(moment: datetime, zone: ZoneInfo) -> datetime:
    """Place a local wall-clock time in UTC, refusing a time that does not exist that day.

    When clocks go forward (last Sunday of March in Denmark) the hour 02:00–02:59 does not exist:
    such a time is refused. When clocks go back (last Sunday of October) 02:00–02:59 happens twice:
    the first one (summer time) is meant.
    """
    naive = moment.replace(tzinfo=None)
    placed = naive.replace(tzinfo=zone, fold=0)
    if placed.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise PlanError(
            Phrase("mistake.plan.no_such_time", time=f"{naive:%Y-%m-%d %H:%M}", zone=zone.key)
        )
    return placed.astimezone(UTC)


def parse_time(text: str, zone: ZoneInfo) -> datetime:
    """Read a local time like 2027-01-31 09:00 and return it in UTC."""
    try:
        moment = datetime.strptime(text.strip(), TIME_FORMAT)
    except ValueError:
        raise PlanError(Phrase("mistake.plan.time", value=repr(text.strip()))) from None
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise PlanError(
            Phrase("mistake.plan.years", first=YEARS[0], last=YEARS[1], year=moment.year)
        )
    return local_to_utc(moment, zone)


def parse_anchor(text: str) -> dict[str, Any] | None:
    """Read a phase like "round 1 closes - 2d"; None if the text is no phase."""
    match = _PHASE.match(text)
    if match is None:
        return None
    word = (match["round_event"] or match["ideas_event"]).lower()
    opens = word in ("opens", "åbner")
    if match["round"] is not None:
        event, round_number = ("opens" if opens else "closes"), int(match["round"])
    else:
        event, round_number = ("ideas_opens" if opens else "ideas_closes"), None
    offset = 0
    if match["amount"] is not None:
        unit = _UNITS.get(match["unit"].lower())
        if unit is None:
            raise PlanError(Phrase("mistake.plan.unknown_unit", unit=repr(match["unit"])))
        offset = int(match["amount"]) * unit * (-1 if match["sign"] == "-" else 1)
        if abs(offset) > MAX_OFFSET_MINUTES:
            days = MAX_OFFSET_MINUTES // 1440
            raise PlanError(Phrase("mistake.plan.offset_too_far", days=days))
    return {"event": event, "round": round_number, "offset_minutes": offset}


# How an anchor and an audience are written back, per language; each is read again by
# parse_anchor and parse_audience, so a post edited in the dashboard keeps its meaning.
_EVENT_WORDS = {
    "en": {"round": "round", "ideas": "ideas", "opens": "opens", "closes": "closes"},
    "da": {"round": "runde", "ideas": "idéer", "opens": "åbner", "closes": "lukker"},
}
_UNIT_WORDS = {
    "en": ((1440, "d", "d"), (60, "h", "h"), (1, "m", "m")),
    "da": ((1440, " dag", " dage"), (60, " time", " timer"), (1, " minut", " minutter")),
}
_AUDIENCE_WORDS = {
    "en": {
        "channel": "channel",
        "all": "everyone",
        "hear_back": "participants",
        "unfinished": "unfinished",
        "decision": "decision",
    },
    "da": {
        "channel": "kanal",
        "all": "alle",
        "hear_back": "deltagere",
        "unfinished": "ufærdige",
        "decision": "beslutning",
    },
}


def describe_anchor(anchor: dict[str, Any], language: str = "en") -> str:
    """Write an anchor back the way staff write it (in English, or in Danish)."""
    words = _EVENT_WORDS.get(language, _EVENT_WORDS["en"])
    event = anchor["event"]
    head = (
        f"{words['round']} {anchor['round']} {words[event]}"
        if event in ("opens", "closes")
        else f"{words['ideas']} {words[event.split('_')[1]]}"
    )
    minutes = int(anchor.get("offset_minutes") or 0)
    if not minutes:
        return head
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    for size, one, many in _UNIT_WORDS.get(language, _UNIT_WORDS["en"]):
        if minutes % size == 0:
            amount = minutes // size
            return f"{head} {sign} {amount}{one if amount == 1 else many}"
    raise AssertionError("every whole number of minutes divides by 1")


@dataclass(frozen=True)
class Phases:
    """A consultation's phase times, in UTC: rounds by position, and the ideas phase."""

    rounds: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)
    ideas: tuple[datetime, datetime] | None = None


# The automatic posts stay out of the night: they reach citizens as phone notifications, and
# a round closing at 23:59 put its reminder at 23:59 the day before.
QUIET_FROM, QUIET_UNTIL, EVENING = time(21), time(8), time(20)


def out_of_quiet_hours(moment: datetime, zone: ZoneInfo, *, earlier: bool) -> datetime:
    """A moment in the quiet hours (21:00 to 8:00 local time) moved out of them: a reminder
    (``earlier``) to 20:00 the evening before, an announcement or results to 8:00 after."""
    local = moment.astimezone(zone)
    if QUIET_UNTIL <= local.time() < QUIET_FROM:
        return moment
    day = local.date()
    if earlier:
        day -= timedelta(days=1) if local.time() < QUIET_UNTIL else timedelta(0)
        moved = datetime.combine(day, EVENING, zone)
    else:
        day += timedelta(days=1) if local.time() >= QUIET_FROM else timedelta(0)
        moved = datetime.combine(day, QUIET_UNTIL, zone)
    return moved.astimezone(UTC)


def phase_window(anchor: dict[str, Any], phases: Phases) -> tuple[datetime, datetime]:
    """When the phase an anchor names opens and closes; PlanError if it has none."""
    if anchor["event"] in ("opens", "closes"):
        window = phases.rounds.get(int(anchor["round"]))
        if window is None:
            raise PlanError(Phrase("mistake.plan.no_round", round=anchor["round"]))
        return window
    if phases.ideas is None:
        raise PlanError(Phrase("mistake.plan.no_ideas_phase"))
    return phases.ideas


def anchored_time(
    anchor: dict[str, Any],
    phases: Phases,
    quiet_in: ZoneInfo | None = None,
    now: datetime | None = None,
) -> datetime:
    """The UTC time an anchor points at, given the consultation's current phases; with
    ``quiet_in``, out of the quiet hours of that zone (the automatic posts), and not moved
    back to before ``now``."""
    window = phase_window(anchor, phases)
    moment = window[0] if anchor["event"] in ("opens", "ideas_opens") else window[1]
    offset = int(anchor.get("offset_minutes") or 0)
    due = moment + timedelta(minutes=offset)
    if quiet_in is None:
        return due
    moved = out_of_quiet_hours(due, quiet_in, earlier=offset < 0)
    if now is not None and moved < now <= due:
        # The evening before has passed already (an import at 21:30): the morning after.
        moved = out_of_quiet_hours(due, quiet_in, earlier=False)
    # A phase that opens and closes in one night: its announcement goes when it opens, not
    # in the morning after it closed (nor a reminder after the close).
    return due if due < window[1] <= moved else moved


def parse_repeat(text: str) -> dict[str, Any] | None:
    """Read "daily 3", "weekly 4" or "every 2 days 5"; None for an empty cell."""
    if not text.strip():
        return None
    match = _REPEAT.match(text)
    if match is None:
        raise PlanError(Phrase("mistake.plan.repeat_shape", value=repr(text.strip())))
    every = match["every"].lower()
    days = (
        1
        if every in ("daily", "dagligt")
        else 7
        if every in ("weekly", "ugentligt")
        else int(match["days"] or match["dage"])
    )
    times = int(match["times"])
    if not 1 <= days <= 365:
        raise PlanError(Phrase("mistake.plan.repeat_every"))
    if not 2 <= times <= MAX_REPEATS:
        raise PlanError(Phrase("mistake.plan.repeat_times", limit=MAX_REPEATS))
    return {"every_days": days, "times": times}


def next_occurrence(due_at: datetime, repeat: dict[str, Any], zone: ZoneInfo) -> datetime:
    """The next time of a repeating post: the same local time of day, ``every_days`` later.

    A repeat that lands in the hour skipped when clocks go forward goes out an hour later.
    """
    local = due_at.astimezone(zone)
    day: date = local.date() + timedelta(days=int(repeat["every_days"]))
    wall = datetime.combine(day, time(local.hour, local.minute))
    try:
        return local_to_utc(wall, zone)
    except PlanError:
        return local_to_utc(wall + timedelta(hours=1), zone)


def parse_audience(text: str) -> dict[str, Any]:
    """Read an audience: "channel", chat ids, "everyone", "participants", "unfinished",
    "segment:QUESTION=OPTION|OPTION", "decision:N" — several separated by commas."""
    audience: dict[str, Any] = {"chats": [], "channel": False, "subscribers": None}
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        word = raw.lower()
        if word in CHANNEL_WORDS:
            audience["channel"] = True
        elif re.fullmatch(r"-?\d+", word, re.ASCII):
            # Checked by length first: int() of thousands of digits is refused, and slow.
            if len(word) > 17 or not 0 < abs(int(word)) < MAX_CHAT_ID:
                raise PlanError(Phrase("mistake.plan.not_a_chat", value=repr(raw)))
            audience["chats"].append(int(word))
        elif word in SUBSCRIBER_AUDIENCES:
            _set_subscribers(audience, SUBSCRIBER_AUDIENCES[word])
        elif word.startswith("segment:"):
            question, _, options = raw[len("segment:") :].partition("=")
            keys = [o.strip() for o in options.split("|") if o.strip()]
            if not question.strip() or not keys:
                raise PlanError(Phrase("mistake.plan.segment_shape", value=repr(raw)))
            _set_subscribers(audience, "segment")
            audience["segment"] = {"question": question.strip(), "options": keys}
        elif word.startswith(("decision:", "beslutning:")):
            number = raw.partition(":")[2].strip()
            # ASCII digits only: "²" is a digit to str.isdigit() but no number to int().
            if not re.fullmatch(r"\d{1,10}", number, re.ASCII) or not (
                0 < int(number) <= MAX_STATEMENT_NUMBER
            ):
                raise PlanError(Phrase("mistake.plan.decision_shape", value=repr(raw)))
            _set_subscribers(audience, "decision")
            audience["statement"] = int(number)
        else:
            raise PlanError(Phrase("mistake.plan.unknown_audience", value=repr(raw)))
    if not audience["chats"] and not audience["channel"] and audience["subscribers"] is None:
        raise PlanError(Phrase("mistake.plan.no_audience"))
    return audience


def _set_subscribers(audience: dict[str, Any], kind: str) -> None:
    if audience["subscribers"] not in (None, kind):
        raise PlanError(Phrase("mistake.plan.one_group"))
    audience["subscribers"] = kind


def describe_audience(audience: dict[str, Any], language: str = "en") -> str:
    """Write an audience back the way staff write it (in English, or in Danish)."""
    words = _AUDIENCE_WORDS.get(language, _AUDIENCE_WORDS["en"])
    parts: list[str] = []
    if audience.get("channel"):
        parts.append(words["channel"])
    parts.extend(str(chat) for chat in audience.get("chats") or [])
    kind = audience.get("subscribers")
    if kind in ("all", "hear_back", "unfinished"):
        parts.append(words[kind])
    elif kind == "segment":
        segment = audience["segment"]
        parts.append(f"segment:{segment['question']}={'|'.join(segment['options'])}")
    elif kind == "decision":
        parts.append(f"{words['decision']}:{audience['statement']}")
    return ", ".join(parts)


def check_channel(audience: dict[str, Any], *, channel_configured: bool) -> None:
    """Refuse a post to the public channel when there is none: it would reach nobody."""
    if audience.get("channel") and not channel_configured:
        raise PlanError(Phrase("mistake.plan.no_channel"))


def needs_consultation(audience: dict[str, Any]) -> bool:
    """Whether the audience only makes sense within one consultation."""
    return audience.get("subscribers") in ("hear_back", "unfinished", "segment", "decision")


def check_text(text: str, *, with_image: bool, what: Phrase) -> str:
    """A post text as Telegram will take it: not empty, within the message or caption limit.

    ``what`` names the text in the mistake ("the da text", "the text").
    """
    text = text.strip()
    if not text:
        raise PlanError(Phrase("mistake.plan.text_empty", what=what))
    limit = MAX_CAPTION_LENGTH if with_image else MAX_TEXT_LENGTH
    if len(text) > limit:
        key = "mistake.plan.caption_too_long" if with_image else "mistake.plan.text_too_long"
        raise PlanError(Phrase(key, what=what, length=len(text), limit=limit))
    return text


def check_image(content: bytes, name: str) -> bytes:
    """Accept a PNG or JPEG Telegram will take as a photo."""
    if len(content) > MAX_IMAGE_BYTES:
        raise PlanError(Phrase("mistake.plan.image_too_large", name=name))
    if not (content.startswith(b"\x89PNG\r\n\x1a\n") or content.startswith(b"\xff\xd8\xff")):
        raise PlanError(Phrase("mistake.plan.not_an_image", name=name))
    return content


def check_link(link: str) -> dict[str, str]:
    """A button's target: an https link, or "consultation[:slug]" for a deep link into one."""
    link = link.strip()
    if link.startswith("https://") and " " not in link and len(link) > len("https://"):
        return {"url": link}
    word, _, slug = link.partition(":")
    if word.lower() in ("consultation", "høring", "hoering"):
        return {"consultation": slug.strip()}
    raise PlanError(Phrase("mistake.plan.link_shape", value=repr(link)))


# A post's note is one text of at most this many characters (the column's size).
NOTE_LENGTH = 300


def set_note(post: PlannedPost, parts: list[Phrase], english: Callable[..., str]) -> None:
    """Note why a post was skipped, cancelled or partly failed: as phrases, which staff read in
    their language, and in English (``english``: the English texts) for the command line."""
    post.note = [part.to_document() for part in parts]
    post.error = "; ".join(part.read(english) for part in parts)[:NOTE_LENGTH]


def note_text(post: PlannedPost, t: Callable[..., str]) -> str:
    """A post's note in ``t``'s language; a note from before notes were phrases is English."""
    if post.note:
        return "; ".join(Phrase.from_document(part).read(t) for part in post.note)
    return post.error or ""


@dataclass(frozen=True)
class Delivery:
    """How a post's broadcast stands: its recipients and what became of their messages."""

    total: int
    sent: int
    unreachable: int
    failed: int
    pending: int

    @classmethod
    def of(cls, recipients: int, counts: dict[str, int]) -> Delivery:
        """From the post's recipients and its outbox rows counted by status."""
        return cls(
            total=recipients,
            sent=counts.get(OutboxStatus.SENT, 0),
            unreachable=counts.get(OutboxStatus.UNREACHABLE, 0),
            failed=counts.get(OutboxStatus.FAILED, 0),
            pending=counts.get(OutboxStatus.PENDING, 0),
        )

    @property
    def done(self) -> int:
        """Messages settled either way: delivered, unreachable or failed."""
        return self.total - self.pending


def late_decision(due_at: datetime, now: datetime, late_window: timedelta) -> tuple[str, int]:
    """Whether a due post goes out on time, late, or is skipped; and by how many seconds."""
    late = max(0, int((now - due_at).total_seconds()))
    if late > late_window.total_seconds():
        return "skip", late
    return ("late" if late >= 60 else "on_time"), late


# Meta's template names: lower-case letters, digits and underscores, at most 512 characters.
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")


def check_template_name(name: str) -> str:
    """A WhatsApp template's name as Meta's WhatsApp Manager shows it; PlanError if not one."""
    name = name.strip()
    if not _TEMPLATE_NAME.fullmatch(name):
        raise PlanError(Phrase("mistake.plan.template_name"))
    return name


# WhatsApp's customer-service window: free-form messages within this long of the citizen's last.
SERVICE_WINDOW = timedelta(hours=24)


def in_service_window(last_seen_at: datetime | None, now: datetime) -> bool:
    """Whether a citizen wrote within WhatsApp's 24-hour window (free-form messages allowed)."""
    return last_seen_at is not None and now - last_seen_at < SERVICE_WINDOW
