"""Screening rules: what in a text needs a moderator's eye, and what to do about it.

Pure functions of plain values. The word lists come from data files (``WordLists``), so a
municipality can extend them without touching code; the live bot and ``borgerdialog screen`` use
the same rules.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from handlers.events import is_invisible
from handlers.screening.special_category import (
    FAMILIES,
    SpecialCategoryPatterns,
    read_terms,
    special_category_findings,
)

if TYPE_CHECKING:
    # Only a type here: the model module builds on these rules, not the other way round.
    from handlers.screening.offensive_model import OffensiveModel

DATA_DIR = Path(__file__).parent / "data"

# Flag kinds, grouped into the categories that consultation settings map to actions.
PERSONAL_DATA = "personal_data"
OFFENSIVE = "offensive"
SPAM = "spam"
OFF_LANGUAGE = "off_language"
# GDPR Art. 9: health, political opinion, religion, sexual orientation, union, ethnic origin.
SPECIAL_CATEGORY = "special_category"
CATEGORY = {
    "cpr": PERSONAL_DATA,
    "phone": PERSONAL_DATA,
    "email": PERSONAL_DATA,
    "address": PERSONAL_DATA,
    "name": PERSONAL_DATA,
    "offensive": OFFENSIVE,
    # Everyday swearing and rudeness: in the offensive category, but never more than reviewed.
    "rude": OFFENSIVE,
    "threat": OFFENSIVE,
    "link": SPAM,
    "repeated": SPAM,
    "long": SPAM,
    "shouting": SPAM,
    "flood": SPAM,
    "off_language": OFF_LANGUAGE,
    # One kind per family (health, politics, ...), so a card says which without a lookup.
    **dict.fromkeys(FAMILIES, SPECIAL_CATEGORY),
}
KINDS = tuple(CATEGORY)
CATEGORIES = (PERSONAL_DATA, OFFENSIVE, SPAM, OFF_LANGUAGE, SPECIAL_CATEGORY)

# Actions from mildest to strictest; a text gets the strictest action of its flags.
ALLOW = "allow"
REVIEW = "review"  # shown at once, reviewed afterwards
HOLD = "hold"  # shown only after a moderator approves
HIDE = "hide"  # hidden at once; a moderator may still approve it
ACTIONS = (ALLOW, REVIEW, HOLD, HIDE)
DEFAULT_POLICY: Mapping[str, str] = {
    PERSONAL_DATA: HOLD,
    OFFENSIVE: HOLD,
    SPAM: REVIEW,
    OFF_LANGUAGE: REVIEW,
    # Shown at once and looked at afterwards: telling one's own diagnosis or vote is often the
    # point of an answer, and a consultation about health services may allow it outright.
    SPECIAL_CATEGORY: REVIEW,
}
# Kinds stricter than their category's default, whatever a consultation says.
KIND_DEFAULTS: Mapping[str, str] = {"threat": HIDE}
# Kinds milder than their category: "noget lort" is looked at afterwards, never held, even where
# a consultation holds or hides offensive language.
KIND_CAPS: Mapping[str, str] = {"rude": REVIEW}


@dataclass(frozen=True)
class Flag:
    """One finding: its kind, the stretch of text it concerns, and what matched."""

    kind: str
    start: int
    end: int
    # The list entry or rule that matched, for the moderator ("idiot*", "CPR 01.01.1990").
    detail: str = ""

    @property
    def category(self) -> str:
        """The category the kind belongs to (personal_data, offensive, spam, ...)."""
        return CATEGORY[self.kind]


@dataclass(frozen=True)
class Screening:
    """The result of screening one text."""

    text: str
    language: str | None
    flags: tuple[Flag, ...]
    action: str

    @property
    def kinds(self) -> list[str]:
        """The distinct flag kinds, in the order first found."""
        return list(dict.fromkeys(flag.kind for flag in self.flags))

    def masked(self) -> str:
        """The text with every personal-data span replaced by a mask."""
        return mask(self.text, self.flags)

    def personal_data(self) -> list[str]:
        """The personal-data stretches of the text, as written."""
        return [self.text[f.start : f.end] for f in self.flags if f.category == PERSONAL_DATA]


MASK = "▒▒▒"


def mask(text: str, flags: Iterable[Flag]) -> str:
    """The text with every personal-data span replaced by a mask, for eyes that need not see it."""
    spans = sorted(
        (f.start, f.end) for f in flags if f.category == PERSONAL_DATA and f.end > f.start
    )
    pieces, position = [], 0
    for start, end in spans:
        if end <= position:
            continue
        pieces.append(text[position : max(start, position)])
        pieces.append(MASK)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


@dataclass(frozen=True)
class Limits:
    """Thresholds of the spam rules."""

    long_text: int = 1000
    # Shouting: at least this many letters, and this share of them capitals.
    shouting_letters: int = 12
    shouting_share: float = 0.7
    # A text repeated counts as spam only when it is this long (after normalising): many people
    # honestly write "flere stier".
    repeated_min_length: int = 30
    # More than this many contributions by one author within the flood window is a flood.
    flood_count: int = 5
    flood_minutes: int = 10


@dataclass(frozen=True)
class History:
    """What came before a text: how often the same text was seen, how busy its author was."""

    same_text_before: int = 0
    author_recent: int = 0


def fingerprint(text: str) -> str:
    """A short hash of a text's letters and digits, so copies are found whatever their spacing."""
    letters = "".join(ch for ch in text.lower() if ch.isalnum())
    return hashlib.sha256(letters.encode("utf-8")).hexdigest()[:32]


# -- word lists ------------------------------------------------------------------------------


def _entries(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


ANY_WORDS = r"\w+(?:\s+\w+){0,2}"
# A threat entry ending in this word counts only at the end of a clause (see _threat_patterns).
CLAUSE_END = "$"


def _phrase_pattern(entry: str, target: str = ANY_WORDS) -> str:
    """A list entry as a regular expression over normalised text ('*' is any letters).

    A lone '*' is one to three words; a lone '@' is the target of a threat, one to three words
    that ``target`` allows.
    """
    words = []
    for word in entry.lower().split():
        if word == "*":
            words.append(ANY_WORDS)
        elif word == "@":
            words.append(target)
        else:
            words.append(r"\w*".join(_letters(part) for part in word.split("*")))
    return r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)"


def _letters(part: str) -> str:
    """A literal piece of an entry, where a censored mark (f*ck) may stand for any letter."""
    return "".join(f"[{re.escape(ch)}{CENSORED}]" if ch.isalpha() else re.escape(ch) for ch in part)


def _alternation(entries: Iterable[str], target: str = ANY_WORDS) -> re.Pattern[str] | None:
    unique = sorted(set(entries), key=len, reverse=True)
    if not unique:
        return None
    return re.compile("|".join(f"(?:{_phrase_pattern(e, target)})" for e in unique))


def _target_pattern(non_targets: Iterable[str]) -> str:
    """One to three words, none of which is a word that cannot be threatened (os, tiden, idé)."""
    words = [
        r"\w*".join(_letters(part) for part in word.lower().split("*"))
        for word in non_targets
        if len(word.split()) == 1
    ]
    if not words:
        return ANY_WORDS
    allowed = rf"(?!(?:{'|'.join(sorted(words, key=len, reverse=True))})(?!\w))\w+"
    return rf"{allowed}(?:\s+{allowed}){{0,2}}"


def _threat_patterns(
    entries: Sequence[str], non_targets: Sequence[str]
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """Threat entries that count anywhere, and those that count only at the end of a clause."""
    target = _target_pattern(non_targets)
    anywhere = [e for e in entries if e.split()[-1] != CLAUSE_END]
    at_end = [e.rsplit(maxsplit=1)[0] for e in entries if e.split()[-1] == CLAUSE_END]
    return _alternation(anywhere, target), _alternation(at_end, target)


@dataclass(frozen=True)
class WordLists:
    """The data files behind the rules, compiled once."""

    offensive: re.Pattern[str] | None
    threats: re.Pattern[str] | None
    # Threats that are threats only at the end of a clause ("jeg finder dig!").
    threats_at_clause_end: re.Pattern[str] | None
    # Figures of speech that contain a threat's words ("skyde genvej"); they cancel a threat.
    threat_figures: re.Pattern[str] | None
    first_names: frozenset[str]
    name_cues: re.Pattern[str] | None
    address: re.Pattern[str]
    # Street words as they stand alone, capitalised ("Plads", "Vej", "Parken"), to tell a place
    # named after a person ("Søren Kierkegaards Plads") from the person.
    street_words: frozenset[str] = frozenset()
    # Statements about someone's health, politics, faith, sexuality, union or ethnic origin.
    special_categories: SpecialCategoryPatterns | None = None
    # Everyday swearing, flagged "rude" (reviewed, never held).
    swearing: re.Pattern[str] | None = None
    # Words that raise no flag but that the offensive-language model weighs ("latterlig").
    offensive_signals: re.Pattern[str] | None = None

    @classmethod
    def load(cls, extra_dir: Path | None = None) -> WordLists:
        """Read the shipped lists, plus same-named files in a municipality's own directory."""

        def read(name: str) -> list[str]:
            found = _entries(DATA_DIR / name)
            if extra_dir is not None:
                found += _entries(extra_dir / name)
            return found

        cues = read("name_cues.txt")
        cue_pattern = None
        if cues:
            alternatives = "|".join(
                r"\s+".join(re.escape(w) for w in c.split()) for c in sorted(cues, key=len)[::-1]
            )
            cue_pattern = re.compile(
                rf"(?i:(?<!\w)(?:{alternatives}))\s+({NAME_WORD}(?:[ -]{NAME_WORD})?)"
            )
        threats, threats_at_clause_end = _threat_patterns(
            read("threats.txt"), read("threat_non_targets.txt")
        )
        return cls(
            offensive=_alternation(read("offensive.txt")),
            swearing=_alternation(read("swearing.txt")),
            offensive_signals=_alternation(read("offensive_signals.txt")),
            threats=threats,
            threats_at_clause_end=threats_at_clause_end,
            threat_figures=_alternation(read("threat_figures.txt")),
            first_names=frozenset(read("first_names.txt")),
            name_cues=cue_pattern,
            address=_address_pattern(read("street_words.txt")),
            street_words=frozenset(w.capitalize() for w in read("street_words.txt")),
            special_categories=SpecialCategoryPatterns.compile(
                read_terms(read), read("first_names.txt")
            ),
        )


# -- normalising against obfuscation ----------------------------------------------------------

LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
# Put between the letters of a word to slip past a filter: l.o.r.t, i-d-i-o-t.
INSIDE_SEPARATORS = set(".-_·'’|")
# Put in place of a letter: f*ck, l#rt. Normalised to a letter-like mark any letter matches.
CENSOR_MARKS = set("*#")
CENSORED = "ª"


def normalise(text: str) -> tuple[str, list[int]]:
    """Lower-case the text and undo common obfuscations; map each character back to the text.

    Returns the normalised text and, for each of its characters, the index in ``text`` it came
    from, so a match can be reported as a span of what the author wrote.
    """
    tokens: list[tuple[str, list[int]]] = []
    for match in re.finditer(r"\S+", text):
        tokens.append(_normalise_token(match.group(), match.start()))
    # Spaced-out letters (l o r t) become one word when at least three stand in a row.
    joined: list[tuple[str, list[int]]] = []
    run: list[tuple[str, list[int]]] = []

    def flush() -> None:
        if len(run) >= 3:
            joined.append(("".join(t for t, _ in run), [i for _, idx in run for i in idx]))
        else:
            joined.extend(run)
        run.clear()

    for token, index in tokens:
        if len(token) == 1 and token.isalpha():
            run.append((token, index))
            continue
        flush()
        joined.append((token, index))
    flush()
    out: list[str] = []
    positions: list[int] = []
    for token, index in joined:
        if not token:
            continue
        if out:
            out.append(" ")
            positions.append(index[0])
        out.append(token)
        positions.extend(index)
    return "".join(out), positions


# Letters of other scripts drawn like Latin ones (lower case), put into a Latin word to slip
# past the lists: "іdіоt" with Cyrillic і and о.
LOOK_ALIKES = {
    **dict(zip("аеорсухіјѕкмтнвԁһӏԛԝ", "aeopcyxijskmthbdhlqw", strict=True)),  # Cyrillic
    **dict(zip("οαιεκνρτυχ", "oaieknptux", strict=True)),  # Greek
}


def _unmasked(token: str) -> tuple[str, list[int] | None]:
    """A token lower-cased with its disguises undone, and for each of its characters the index
    in the token it came from (None when each stands where it stood, as in nearly every word).

    Wide, bold, script and circled letters and digits (ｉｄｉｏｔ, 𝐢𝐝𝐢𝐨𝐭, ｉｄ１ｏｔ) are their
    plain forms (Unicode's compatibility forms); look-alikes from other scripts are Latin
    letters in a word that has Latin letters too, so a Ukrainian or Greek word ("рік") keeps
    its own. A mark that lower-casing adds to a letter (the dot of "İ") goes.
    """
    if max(token) < "\u0100":
        # Danish and English words: nothing to undo, and no Latin-1 letter lower-cases to two.
        return token.lower(), None
    parts: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(token):
        plain = ch
        if ord(ch) > 0x2000 and unicodedata.category(ch)[0] in "LN":
            folded = unicodedata.normalize("NFKC", ch)
            if folded.isalnum():
                plain = folded
        lower = plain.lower()
        if len(lower) > len(plain):
            # "İ" lower-cases to "i" and a dot above: the letter alone, at the same index.
            lower = "".join(part for part in lower if unicodedata.category(part) != "Mn")
        parts.append(lower)
        index.extend([i] * len(lower))
    text = "".join(parts)
    if any((ch.isascii() and ch.isalpha()) or ch in "æøå" for ch in text):
        text = "".join(LOOK_ALIKES.get(ch, ch) for ch in text)
    return text, index


def _normalise_token(token: str, offset: int) -> tuple[str, list[int]]:
    unmasked, moved = _unmasked(token)
    origin = moved if moved is not None else range(len(unmasked))
    last = len(unmasked) - 1
    has_letter = any(ch.isalpha() for ch in unmasked)
    chars: list[str] = []
    index: list[int] = []
    for position, ch in enumerate(unmasked):
        following = unmasked[position + 1] if position < last else ""
        if ch.isalpha():
            chars.append(ch)
        elif has_letter and ch in LEET and _stands_for_letter(ch, chars, following):
            chars.append(LEET[ch])
        elif ch in CENSOR_MARKS and chars and chars[-1].isalpha() and following.isalpha():
            chars.append(CENSORED)
        elif ch in INSIDE_SEPARATORS and chars and following.isalnum():
            continue
        elif ch.isdigit():
            chars.append(ch)
        else:
            # Other punctuation ends a word: "idiot!" is "idiot" followed by a mark.
            chars.append(" ")
        index.append(offset + origin[position])
    # Three or more of one letter in a row are one letter shouted: "fuuuck", "lorrrt".
    word, index = _collapse_runs("".join(chars), index)
    stripped = word.strip()
    if not stripped:
        return "", []
    lead = len(word) - len(word.lstrip())
    return stripped, index[lead : lead + len(stripped)]


def _stands_for_letter(ch: str, before: list[str], following: str) -> bool:
    """Whether a digit or sign inside a word is a letter in disguise (1d10t, a$$hole)."""
    if ch.isdigit() or following.isalnum():
        return True
    # "a$$" ends in signs; "idiot!" ends a sentence, so '!' only counts before a letter.
    return ch != "!" and (following in LEET or (bool(before) and before[-1].isalpha()))


def _collapse_runs(word: str, index: list[int]) -> tuple[str, list[int]]:
    """Turn runs of three or more equal letters into one letter."""
    out: list[str] = []
    out_index: list[int] = []
    i = 0
    while i < len(word):
        j = i
        while j < len(word) and word[j] == word[i]:
            j += 1
        keep = 1 if j - i >= 3 and word[i].isalpha() else j - i
        out.extend(word[i] * keep)
        out_index.extend(index[i : i + keep])
        i = j
    return "".join(out), out_index


# -- the rules ---------------------------------------------------------------------------------

NAME_WORD = r"[A-ZÆØÅ][a-zæøåéü]+"
CPR = re.compile(r"(?<![\d-])(\d{2})(\d{2})(\d{2})[- ]?(\d{4})(?![\d-])")
DANISH_PHONE = re.compile(
    r"(?<![\d+])(?:(?:\+|00)45[\s-]?)?(?:[2-9]\d(?:[\s-]?\d{2}){3}|[2-9]\d{3}[\s-]?\d{4})(?![\d])"
)
INTERNATIONAL_PHONE = re.compile(
    r"(?<![\w+])(?:\+|00)(?!45)[1-9]\d{0,2}(?:[\s-]?\d{1,4}){2,5}(?!\d)"
)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")
LINK = re.compile(
    r"(?i)(?:\bhttps?://\S+|\bwww\.\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*"
    r"\.(?:dk|com|net|org|eu|io|info|biz|ru|ly|me|co|uk|de|se|no|xyz|top)\b(?:/\S*)?)"
)
# Standalone street words need a capitalised word before them ("Jens Baggesens Vej 4").
STANDALONE_STREET_WORDS = ("Vej", "Gade", "Allé", "Alle", "Stræde", "Torv", "Plads", "Boulevard")
ENGLISH_STREET = re.compile(
    r"\b\d{1,4}[A-Za-z]?,?\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|Road|Avenue|Lane|Drive|Way|Close"
    r"|Square)\b"
)


def _address_pattern(street_words: Sequence[str]) -> re.Pattern[str]:
    endings = "|".join(re.escape(w) for w in sorted({w.lower() for w in street_words}, key=len))
    standalone = "|".join(STANDALONE_STREET_WORDS)
    street = (
        rf"(?:{NAME_WORD}\s+){{0,3}}(?:[A-ZÆØÅ][a-zæøåé]{{2,}}(?:{endings})"
        rf"|(?<=\w\s)(?:{standalone}))"
    )
    number = r"\d{1,4}(?:\s?[A-Za-z])?(?!\d)"
    floor = r"(?:,?\s*\d{1,2}\.?\s*(?:th|tv|mf|sal)\.?)?"
    town = r"(?:,?\s*\d{4}\s+[A-ZÆØÅ][a-zæøå]+)?"
    return re.compile(rf"(?<!\w){street}\s+{number}\b{floor}{town}")


# Words before a number that make it a case, journal, company or account number, not a phone or
# a CPR number: "Sagsnummer 2023-0456-12", "j.nr. 20/12345", "CVR 32345678".
REFERENCE_CUE = re.compile(
    r"(?i)(?<!\w)(?:sags?\s*-?\s*(?:nr|nummer|id)|j\.?\s*nr|journal\s*-?\s*(?:nr|nummer)"
    r"|ref(?:erence)?(?:\s*-?\s*(?:nr|nummer))?|løbe\s*-?\s*(?:nr|nummer)|cvr(?:\s*-?\s*nr)?"
    r"|se\s*-?\s*nr|p\s*-?\s*(?:nr|nummer)|ean(?:\s*-?\s*nr)?|(?:ordre|faktura|konto|kunde|reg)"
    r"\s*-?\s*\.?\s*(?:nr|nummer)|case\s*(?:no|number)|file\s*(?:no|number))"
    # "Sag nr.", "Kontonummer 1234 0012345678": a number may sit between the cue and this one.
    r"\.?\s*(?:nr\.?\s*)?[:.]?\s*[\d\s./-]*$"
)
# The groupings Danish phone numbers are written in (digits per group, country code left out):
# 20304050, 20 30 40 50, 2030 4050, 2030 40 50, 20 30 4050. A reference is grouped otherwise
# (24-001234).
PHONE_GROUPINGS = {(8,), (2, 2, 2, 2), (4, 4), (4, 2, 2), (2, 2, 4)}


def _is_reference_number(text: str, start: int, end: int) -> bool:
    """Whether a number that looks like a phone number is a case or reference number instead."""
    # Part of a longer number: 2023-0456-12, 20/12345-7.
    if re.match(r"[-/.]\d", text[end : end + 2]) or re.search(r"\d[-/.]$", text[:start]):
        return True
    # Years: "2026-2027" is a budget period, "2019 2020" a list of seasons, though 20262027
    # could be a mobile number.
    years = re.fullmatch(r"((?:19|20)\d\d)(?:\s?-\s?|\s+)((?:19|20)\d\d)", text[start:end])
    if years and 0 < int(years.group(2)) - int(years.group(1)) <= 10:
        return True
    return bool(REFERENCE_CUE.search(text[max(0, start - 30) : start]))


def _phone_grouping(number: str) -> tuple[int, ...]:
    national = re.sub(r"^(?:\+|00)45", "", number.strip())
    return tuple(len(group) for group in re.split(r"[\s-]+", national.strip()) if group)


def _valid_cpr_date(day: int, month: int, year2: int, serial: str) -> date | None:
    """The birth date a CPR number states, or None if no such day exists.

    The first digit of the serial number tells the century (CPR office rules).
    """
    century_digit = int(serial[0])
    if century_digit <= 3:
        century = 1900
    elif century_digit in (4, 9):
        century = 2000 if year2 <= 36 else 1900
    else:
        century = 2000 if year2 <= 57 else 1800
    try:
        return date(century + year2, month, day)
    except ValueError:
        return None


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def personal_data_flags(text: str, lists: WordLists) -> list[Flag]:
    """CPR numbers, phone numbers, e-mail addresses, street addresses and named people."""
    flags: list[Flag] = []
    for match in CPR.finditer(text):
        day, month, year2 = (int(match.group(i)) for i in (1, 2, 3))
        born = _valid_cpr_date(day, month, year2, match.group(4))
        if born is not None:
            flags.append(Flag("cpr", match.start(), match.end(), f"{born:%d.%m.%Y}"))
    taken = [(f.start, f.end) for f in flags]
    for match in EMAIL.finditer(text):
        flags.append(Flag("email", match.start(), match.end()))
    taken += [(f.start, f.end) for f in flags if f.kind == "email"]
    for pattern in (INTERNATIONAL_PHONE, DANISH_PHONE):
        for match in pattern.finditer(text):
            digits = sum(ch.isdigit() for ch in match.group())
            if _is_reference_number(text, match.start(), match.end()):
                continue
            if pattern is DANISH_PHONE and _phone_grouping(match.group()) not in PHONE_GROUPINGS:
                continue
            if 8 <= digits <= 15 and not _overlaps(match.start(), match.end(), taken):
                flags.append(Flag("phone", match.start(), match.end()))
                taken.append((match.start(), match.end()))
    for pattern in (lists.address, ENGLISH_STREET):
        for match in pattern.finditer(text):
            if not _overlaps(match.start(), match.end(), taken):
                flags.append(Flag("address", match.start(), match.end()))
                taken.append((match.start(), match.end()))
    flags.extend(_name_flags(text, lists, taken))
    return flags


def _name_flags(text: str, lists: WordLists, taken: list[tuple[int, int]]) -> list[Flag]:
    found: list[Flag] = []
    spans = list(taken)
    for match in re.finditer(rf"\b({NAME_WORD})((?:[ -]{NAME_WORD})+)", text):
        first = match.group(1)
        if _names_a_place(re.split(r"[ -]", match.group()), lists):
            continue
        if first in lists.first_names and not _overlaps(match.start(), match.end(), spans):
            # "Jens Hansen": a given name and a surname. Stop before a street word's name.
            found.append(Flag("name", match.start(), match.end(), first))
            spans.append((match.start(), match.end()))
    if lists.name_cues is not None:
        for match in lists.name_cues.finditer(text):
            start, end = match.span(1)
            if not _overlaps(start, end, spans):
                cue = text[match.start() : start].strip()
                found.append(Flag("name", start, end, f"after {cue}"))
                spans.append((start, end))
    return found


# Where a sentence ends inside a match, its words belong to two sentences, not one threat.
SENTENCE_BREAK = re.compile(r"[.!?;]\s")
# What may follow a clause-final threat: nothing, or a mark that is not a word ("!", ",", "😡").
AT_CLAUSE_END = re.compile(r"\s*(?:$|[^\w\s])")


def _threat_matches(
    text: str, normalised: str, positions: list[int], lists: WordLists
) -> Iterator[tuple[int, int]]:
    """Spans (in ``text``) of threats, without figures of speech and sentence-crossing matches."""
    figures = []
    if lists.threat_figures is not None:
        figures = [m.span() for m in lists.threat_figures.finditer(normalised)]
    for pattern, at_end in ((lists.threats, False), (lists.threats_at_clause_end, True)):
        if pattern is None:
            continue
        for match in pattern.finditer(normalised):
            if match.end() == match.start():
                continue
            if _overlaps(match.start(), match.end(), figures):
                continue
            start, end = positions[match.start()], positions[match.end() - 1] + 1
            if SENTENCE_BREAK.search(text, start, end):
                continue
            if at_end and not AT_CLAUSE_END.match(text, end):
                continue
            yield start, end


# Street words that name a place after any name, without a genitive: "Anders Fogh Parken".
PLACE_WORDS = frozenset({"Parken", "Pladsen", "Haven", "Torvet", "Boulevard", "Allé", "Plads"})


def _names_a_place(words: Sequence[str], lists: WordLists) -> bool:
    """Whether capitalised words are a street or place named after a person, not the person.

    A genitive followed by a street word is a place ("Søren Kierkegaards Plads", "Niels Bohrs
    Allé", "Dronning Margrethes Vej"); a given name ending in s is no genitive ("Jens Lund" is a
    person, though 'lund' ends street names).
    """
    for before, word in pairwise(words):
        if word in PLACE_WORDS:
            return True
        genitive = before.endswith("s") and before not in lists.first_names
        if genitive and word in lists.street_words:
            return True
    return False


def word_list_flags(text: str, lists: WordLists) -> list[Flag]:
    """Threats, insults and swearing, found through inflections and obfuscations."""
    normalised, positions = normalise(text)
    flags = [Flag("threat", s, e) for s, e in _threat_matches(text, normalised, positions, lists)]
    for kind, pattern in (("offensive", lists.offensive), ("rude", lists.swearing)):
        if pattern is None:
            continue
        for match in pattern.finditer(normalised):
            if match.end() == match.start():
                continue
            start, end = positions[match.start()], positions[match.end() - 1] + 1
            # Words already counted as a threat or an insult are not counted again.
            if not _overlaps(start, end, [(f.start, f.end) for f in flags]):
                flags.append(Flag(kind, start, end, f"«{match.group()}»"))
    return flags


def special_category_flags(text: str, lists: WordLists) -> list[Flag]:
    """What the text tells about someone's health, politics, faith, sexuality, union or origin.

    The detail is the listed term ("diabetes", "Venstre"), for the moderator's card.
    """
    if lists.special_categories is None:
        return []
    return [
        Flag(found.kind, found.start, found.end, found.term)
        for found in special_category_findings(text, lists.special_categories)
    ]


def spam_flags(text: str, history: History, limits: Limits, taken: list[Flag]) -> list[Flag]:
    """Links, copies of earlier texts, very long or shouted texts, and floods."""
    flags: list[Flag] = []
    emails = [(f.start, f.end) for f in taken if f.kind == "email"]
    for match in LINK.finditer(text):
        if not _overlaps(match.start(), match.end(), emails):
            flags.append(Flag("link", match.start(), match.end(), match.group()))
    whole = len(text)
    letters_and_digits = sum(ch.isalnum() for ch in text)
    if history.same_text_before > 0 and letters_and_digits >= limits.repeated_min_length:
        flags.append(Flag("repeated", 0, whole, f"{history.same_text_before}×"))
    if len(text) > limits.long_text:
        flags.append(Flag("long", limits.long_text, whole, f"{len(text)}"))
    letters = [ch for ch in text if ch.isalpha()]
    capitals = sum(ch.isupper() for ch in letters)
    if len(letters) >= limits.shouting_letters and capitals >= limits.shouting_share * len(letters):
        flags.append(Flag("shouting", 0, whole, f"{round(100 * capitals / len(letters))}%"))
    if history.author_recent >= limits.flood_count:
        flags.append(Flag("flood", 0, whole, f"{history.author_recent + 1}"))
    return flags


def decide(flags: Sequence[Flag], policy: Mapping[str, str]) -> str:
    """The strictest action any flag calls for under a consultation's policy."""
    action = ALLOW
    for flag in flags:
        wanted = policy.get(flag.category, DEFAULT_POLICY[flag.category])
        if flag.kind in KIND_DEFAULTS:
            wanted = max(wanted, KIND_DEFAULTS[flag.kind], key=ACTIONS.index)
        if flag.kind in KIND_CAPS:
            wanted = min(wanted, KIND_CAPS[flag.kind], key=ACTIONS.index)
        if flag.category == PERSONAL_DATA:
            # Personal data is never shown to other citizens before a moderator saw it.
            wanted = max(wanted, HOLD, key=ACTIONS.index)
        action = max(action, wanted, key=ACTIONS.index)
    return action


@dataclass(frozen=True)
class Screener:
    """The rules with their word lists, language identification and limits, ready to use."""

    lists: WordLists
    # The language of a text when it can be told with confidence, any language; else None.
    identify_language: Callable[[str], str | None]
    limits: Limits = field(default_factory=Limits)
    # The learned offensive-language score beside the word lists (None: the lists alone).
    offensive_model: OffensiveModel | None = None
    # Told every result, for counting what screening did (the bot's /metrics).
    on_screened: Callable[[Screening], None] | None = None

    def screen(
        self,
        text: str,
        *,
        languages: Sequence[str],
        history: History | None = None,
        policy: Mapping[str, str] = DEFAULT_POLICY,
    ) -> Screening:
        """Screen one text for a consultation held in these languages.

        The text is judged as it shows: without zero-width and other invisible characters,
        which would otherwise hide "2\u200b0\u200b3\u200b0…" from the phone pattern and
        "f\u200buck" from the word lists. The flags point into the text as written.
        """
        shown, positions = _as_shown(text)
        flags, language = self._flags(shown, languages=languages, history=history or History())
        if positions is not None:
            flags = [_written_at(flag, positions, len(text)) for flag in flags]
        flags.sort(key=lambda f: (f.start, KINDS.index(f.kind)))
        result = Screening(text, language, tuple(flags), decide(flags, policy))
        if self.on_screened is not None:
            self.on_screened(result)
        return result

    def _flags(
        self, text: str, *, languages: Sequence[str], history: History
    ) -> tuple[list[Flag], str | None]:
        """What the rules find in a text, and the language it is read as."""
        flags = personal_data_flags(text, self.lists)
        flags += word_list_flags(text, self.lists)
        if self.offensive_model is not None:
            flags += self.offensive_model.flags(text, self.lists, flags)
        flags += special_category_flags(text, self.lists)
        flags += spam_flags(text, history, self.limits, flags)
        language = self.identify_language(text)
        if language is not None and language not in languages:
            flags.append(Flag("off_language", 0, len(text), language))
        return flags, language


def _as_shown(text: str) -> tuple[str, list[int] | None]:
    """The text without invisible characters, and where each kept one stands in the text
    (None when nothing was left out, as for nearly every text)."""
    if not any(is_invisible(char) for char in text):
        return text, None
    positions = [index for index, char in enumerate(text) if not is_invisible(char)]
    return "".join(text[index] for index in positions), positions


def _written_at(flag: Flag, positions: list[int], length: int) -> Flag:
    """A flag found in the text as shown, pointing into the text as written."""
    if not positions:
        return replace(flag, start=0, end=length if flag.end > flag.start else 0)
    start = positions[flag.start] if flag.start < len(positions) else length
    end = positions[flag.end - 1] + 1 if flag.end > flag.start else start
    return replace(flag, start=start, end=end)


def screen_in_order(
    screener: Screener,
    texts: Iterable[tuple[str, str | None]],
    *,
    languages: Sequence[str],
    policy: Mapping[str, str] = DEFAULT_POLICY,
) -> Iterator[Screening]:
    """Screen (text, author) pairs in order: earlier copies and an author's earlier texts count.

    This is how texts copied from elsewhere are screened, where no history is stored.
    """
    seen: Counter[str] = Counter()
    by_author: Counter[str] = Counter()
    for text, author in texts:
        key = fingerprint(text)
        history = History(seen[key], by_author[author] if author else 0)
        seen[key] += 1
        if author:
            by_author[author] += 1
        yield screener.screen(text, languages=languages, history=history, policy=policy)
