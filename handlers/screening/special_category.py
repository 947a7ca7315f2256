"""Special categories of personal data (GDPR Art. 9) told about a person in a text.

Health, political opinion, religion, sexual orientation, trade-union membership and ethnic origin
are special only when they are about someone: the writer ("jeg har diabetes", "jeg stemmer på
Venstre"), a relative or neighbour ("min datter er autist"), an addressed or named person ("Jens
Hansen er alkoholiker"). Talk about policy ("diabetespatienter bør have bedre hjælp", "Venstre
foreslog en skattelettelse") names the same things without telling anything about anyone, and is
not flagged.

A finding is a person, a verb that tells something about them, and a term from the family's
word list (``special_<family>.txt``): the terms are data a municipality can extend; the frames
(who, which verbs) are here. Pure functions of plain values, like the other rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# The families, in the order a moderator reads them; each is a flag kind of its own.
FAMILIES = ("health", "politics", "religion", "sexuality", "union", "ethnicity")

# The person a text tells about. "du" and "han/hun" only outside conditions ("hvis du har
# diabetes" is about anyone); the possessive takes one or two words ("min mand", "min yngste
# søn"). Names come from the given-name list, see ``SpecialCategoryPatterns.compile``.
# Not "her": in Danish it is "here".
_POSSESSIVE = r"(?:min|mit|mine|vores|hans|hendes|my|our|his)(?:\s+[\w-]+){1,2}?"
_PRONOUN = r"(?:jeg|vi|du|han|hun|i|we|you|he|she)"
# Words that may stand between the person and the verb: "jeg har altid stemt", "min mand og jeg
# er", "I've also been".
_GAP = (
    r"(?:også|selv|nok|desværre|heldigvis|faktisk|altså|jo|altid|stadig|nu|længe|igen|vil|skal"
    r"|kan|har|havde|plejer|at|tidligere|begge|og|jeg|mig|i|dag|sidst|also|always|still|now"
    r"|will|have|has|had|both|and|me|used|to|recently|['’]ve|['’]ll)"
)
# Words between the verb and what follows it: "jeg har selv diabetes", "stemmer altid på". Not
# "i", which would make "jeg er i venstre side" a vote.
_ADVERB = (
    r"(?:også|selv|nok|desværre|heldigvis|faktisk|altså|jo|altid|stadig|nu|længe|igen"
    r"|tidligere|alle|sammen|begge|also|always|still|now|recently|all|both)"
)
# Words between the verb and the term: "har fået konstateret kronisk", "er en stolt".
_MODIFIER = (
    r"(?:en|et|a|an|selv|også|stadig|kronisk|svær|alvorlig|let|lidt|desværre|fået|haft"
    r"|konstateret|diagnosen|stillet|got|been|type\s*[12]|praktiserende|troende|stolt|åbent"
    r"|openly|proud|practising|practicing|devout|aktivt?|active|severe|chronic|mild)"
)
# Is: the frame every family shares ("jeg er muslim", "min søn er autist", "I'm gay").
_BE = (
    r"(?:er|var|blev|bliver|har\s+været|am|['’]m|is|['’]s|are|['’]re|was|were|have\s+been"
    r"|['’]ve\s+been)"
)

# Each family's other frames: (verbs, what follows the verb before the term). An empty
# complement lets the term follow the verb at once ("jeg har diabetes").
FRAMES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "health": (
        (r"har|havde|fik|får|have|has|had|['’]ve|['’]ve\s+got|got|get", r"|fået|haft|got"),
        (
            r"lider|led|suffer|suffers|suffered|kæmper|kæmpede|struggle|struggles",
            r"af|med|from|with",
        ),
        (
            _BE,
            r"i\s+behandling\s+(?:for|mod)|syg\s+med|ramt\s+af|diagnosticeret\s+med"
            r"|sygemeldt\s+(?:med|på\s+grund\s+af)|indlagt\s+(?:med|for)|being\s+treated\s+for"
            r"|diagnosed\s+with|treated\s+for|living\s+with|ill\s+with|on\s+sick\s+leave\s+with",
        ),
        (r"tager|tog|take|takes|took", r"medicin\s+(?:mod|for)|medication\s+for|pills\s+for"),
    ),
    "politics": (
        (r"stemmer|stemte|stemt|stemme|vote|votes|voted|voting", r"på|for|"),
        (r"støtter|støttede|support|supports|supported", r""),
        (
            _BE,
            # Not "er i": "jeg er i venstre side".
            r"medlem\s+(?:af|hos)|aktiv\s+(?:i|for)|kandidat\s+for|a\s+member\s+of|member\s+of"
            r"|active\s+in|a\s+candidate\s+for",
        ),
        (r"meldte|meldt|joined|join", r"mig\s+ind\s+i|os\s+ind\s+i|ind\s+i|"),
    ),
    "religion": (
        (
            _BE,
            # Not "er i": "vi var i kirken til koncert".
            r"medlem\s+(?:af|hos)|opdraget\s+som|konverteret\s+til|a\s+member\s+of"
            r"|member\s+of|raised\s+as|raised|converted\s+to",
        ),
        (r"konverterede|convert|converted", r"til|to"),
        (r"tror|troede|believe|believes", r"på|in"),
        (r"beder|bad|pray|prays|prayed", r"til|to"),
        (r"går|gik|go|goes|went", r"i|til|to"),
        (r"er|var|kommer|kom", r"til"),
        (r"meldte|meldt", r"mig\s+(?:ind\s+i|ud\s+af)|ind\s+i|ud\s+af"),
    ),
    "sexuality": ((r"identificerer|identify|identifies", r"mig\s+som|som|as"),),
    "union": (
        (
            _BE,
            r"medlem\s+(?:af|hos)|organiseret\s+i|i|tillidsrepræsentant\s+(?:i|for|hos)"
            r"|a\s+member\s+of|member\s+of|in|a\s+shop\s+steward\s+(?:in|for)",
        ),
        (r"meldte|meldt|joined|join", r"mig\s+ind\s+i|ind\s+i|"),
    ),
    "ethnicity": ((r"kommer|come|comes|came", r"fra\s+en|from\s+a"),),
}
# Phrases that tell about the writer without a term from a list.
FIXED: Mapping[str, str] = {
    "health": (
        r"(?:jeg|vi|min\s+\w+)\s+(?:går|gik)\s+(?:til|hos)\s+(?:en\s+)?(?:psykolog|psykiater)"
        r"|(?:jeg|min\s+\w+|mit\s+\w+|vores\s+\w+)\s+(?:sidder|sad)\s+i\s+(?:en\s+)?kørestol"
    ),
    "union": r"(?:min|mit|vores|my|our)\s+(?:fagforening|union)(?![\w-])",
    # "God" needs its verb: Danish "god" is "good" ("jeg er god til at cykle").
    "religion": r"(?:i|we|my\s+\w+|he|she)\s+(?:believe|believes|pray|prays)\s+(?:in|to)\s+god\b",
}
# Words before a statement that make it a condition, about anyone.
_CONDITION = re.compile(r"(?i)(?:hvis|når|om|såfremt|if|when|whether)\s*$")
_GENERIC_SUBJECT = re.compile(r"(?i)(?:du|han|hun|i|you|he|she)\b")


@dataclass(frozen=True)
class Finding:
    """One special-category statement: the family, the span, and the term that made it one."""

    kind: str
    start: int
    end: int
    term: str


def term_pattern(entry: str) -> str:
    """A list entry as a pattern over the text as written, matched as whole words.

    '*' in a word is any letters, a lone '*' one to three words; 'diabetes' is no part of
    'diabetespatienter' or 'diabetes-patienter'.
    """
    words = []
    for word in entry.split():
        if word == "*":
            words.append(r"[\w-]+(?:\s+[\w-]+){0,2}")
        else:
            words.append(r"\w*".join(re.escape(part) for part in word.split("*")))
    return r"(?<!\w)" + r"\s+".join(words) + r"(?!\w|-\w)"


@dataclass(frozen=True)
class SpecialCategoryPatterns:
    """Per family: the pattern of a statement about someone, and the pattern of its terms."""

    statements: Mapping[str, re.Pattern[str]]
    terms: Mapping[str, re.Pattern[str]]

    @classmethod
    def compile(
        cls, terms: Mapping[str, Iterable[str]], first_names: Iterable[str]
    ) -> SpecialCategoryPatterns:
        """Build the patterns from each family's terms and the list of given names."""
        names = "|".join(re.escape(n) for n in sorted(set(first_names), key=len, reverse=True))
        # A named person: a given name, perhaps with surnames ("Jens Hansen"); capitals matter.
        named = rf"(?-i:(?:{names})(?:\s+[A-ZÆØÅ][a-zæøåé]+){{0,2}})" if names else r"(?!)"
        person = rf"(?:{_POSSESSIVE}|{_PRONOUN}|{named})"
        # After the verb the person is a pronoun or a possessive: "derfor stemmer jeg på SF".
        inverted = rf"(?:{_POSSESSIVE}|jeg|vi|han|hun)"
        gap, adverb = rf"(?:{_GAP}\s+)", rf"(?:{_ADVERB}\s+)"
        mods = rf"(?:{_MODIFIER}\s+){{0,3}}"
        statements, term_patterns = {}, {}
        for family in FAMILIES:
            entries = sorted(set(terms.get(family, ())), key=len, reverse=True)
            alternatives = [FIXED[family]] if family in FIXED else []
            if entries:
                term = "(?:" + "|".join(term_pattern(e) for e in entries) + ")"
                term_patterns[family] = re.compile(rf"(?i){term}")
                # Every way into the term, then the term once: (A|B)T matches as AT|BT does, in
                # the same order, but holds the family's long list of terms once rather than
                # once per frame (it was most of the screener's memory and start-up time).
                said, inverted_leads = [], []
                for verbs, complement in ((_BE, ""), *FRAMES.get(family, ())):
                    optional = "?" if "" in complement.split("|") else ""
                    after = rf"(?:(?:{complement})\s+){optional}" if complement else ""
                    said.append(rf"(?:{verbs})\s+{adverb}{{0,2}}{after}")
                    inverted_leads.append(rf"(?:{verbs})\s+{inverted}\s+{adverb}{{0,2}}{after}")
                # The person (with the long list of given names) once, too.
                leads = [
                    rf"{person}(?:\s+{gap}{{0,3}}|(?=['’]))(?:{'|'.join(said)})",
                    *inverted_leads,
                ]
                # "Jeg som homoseksuel", "we as Muslims".
                article = r"(?:(?:en|et|a|an)\s+)?"
                leads.append(rf"(?:jeg|vi|i|we)\s+(?:som|as)\s+{article}")
                alternatives.append(
                    "(?:" + "|".join(f"(?:{lead})" for lead in leads) + f"){mods}{term}"
                )
                # "Som muslim synes jeg", "as a Muslim, I think".
                alternatives.append(
                    rf"(?:som|as)\s+{article}{mods}{term}\s*,?\s+(?:\w+\s+){{0,2}}?"
                    r"(?:jeg|vi|i|we)(?!\w)"
                )
            if alternatives:
                joined = "|".join(f"(?:{a})" for a in alternatives)
                statements[family] = re.compile(rf"(?i)(?<!\w)(?:{joined})")
        return cls(statements, term_patterns)


def special_category_findings(text: str, patterns: SpecialCategoryPatterns) -> list[Finding]:
    """What the text tells about a person's health, politics, faith, sexuality, union, origin."""
    found: list[Finding] = []
    for family, pattern in patterns.statements.items():
        for match in pattern.finditer(text):
            # "Hvis du har diabetes", "if you vote Labour": a condition is about anyone.
            generic = _GENERIC_SUBJECT.match(match.group())
            if generic and _CONDITION.search(text[: match.start()]):
                continue
            found.append(
                Finding(family, match.start(), match.end(), _term(match, patterns, family))
            )
    return found


def _term(match: re.Match[str], patterns: SpecialCategoryPatterns, family: str) -> str:
    """The listed term in a statement, for the moderator; the last one, as terms end it."""
    term = patterns.terms.get(family)
    found = list(term.finditer(match.group())) if term is not None else []
    return found[-1].group() if found else match.group().split()[-1]


def read_terms(read: Callable[[str], list[str]]) -> dict[str, list[str]]:
    """Every family's word list, through the same reader as the other lists."""
    return {family: read(f"special_{family}.txt") for family in FAMILIES}
