"""The screening rules: every flag kind, found and not found, through inflections and disguises."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.dialogue.i18n import make_language_identifier
from handlers.events import clean_text
from handlers.screening.offensive_model import OffensiveModel
from handlers.screening.rules import (
    HIDE,
    HOLD,
    REVIEW,
    History,
    Screener,
    WordLists,
)
from tests.screening_eval import evaluate


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener(
        WordLists.load(), make_language_identifier(), offensive_model=OffensiveModel.load()
    )


def kinds(screener: Screener, text: str, **history: int) -> list[str]:
    return screener.screen(text, languages=["da", "en"], history=History(**history)).kinds


def spans(screener: Screener, text: str) -> list[tuple[str, str]]:
    result = screener.screen(text, languages=["da", "en"])
    return [(flag.kind, text[flag.start : flag.end]) for flag in result.flags]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Mit cpr er 120385-1234", "120385-1234"),
        ("cpr 0101901234 tak", "0101901234"),
        ("født 29.02.88: 290288 1234", "290288 1234"),
        # Serial 4xxx with year 15 is 2015.
        ("min søns 010115-4123", "010115-4123"),
    ],
)
def test_cpr_numbers_with_real_dates_are_found(screener: Screener, text: str, found: str) -> None:
    assert ("cpr", found) in spans(screener, text)


@pytest.mark.parametrize(
    "text",
    [
        "Sag 320198-1234",  # day 32
        "Ref. 131313-1313",  # month 13
        "290290-1234",  # 29 February 1990 did not exist
        "Regnskab 2026: 1.234.567.890 kr",
        "Ordre 999999-9999",
    ],
)
def test_numbers_that_are_no_date_are_not_cpr(screener: Screener, text: str) -> None:
    assert "cpr" not in kinds(screener, text)


@pytest.mark.parametrize(
    "text",
    [
        "Ring på 22 33 44 55",
        "tlf 2845 6712",
        "nummer 40404040",
        "Ring +45 31 22 45 67",
        "0045 61 23 45 78",
        "sms 26-12-34-56",
        "Call +44 7911 123456",
        "Mobil: +4542424242",
    ],
)
def test_phone_numbers_in_common_groupings(screener: Screener, text: str) -> None:
    assert "phone" in kinds(screener, text)


@pytest.mark.parametrize(
    "text",
    [
        "Stien er 2,5 km og koster 14 millioner",
        "Budget 18 500 000 kr",
        "Klokken 16:30 i 2027",
        "Ring 112 ved ulykker",
        "Postnummer 8000 og 8200",
        "1234 5678",  # Danish numbers never start with 1
    ],
)
def test_other_numbers_are_not_phones(screener: Screener, text: str) -> None:
    assert "phone" not in kinds(screener, text)


def test_email_addresses_but_not_handles(screener: Screener) -> None:
    address = "j.smith+park@example.co.uk"
    assert ("email", address) in spans(screener, f"mail {address}")
    assert "email" not in kinds(screener, "Følg @naturvenner på Instagram")
    # The domain of an address is not also reported as a link.
    assert kinds(screener, "skriv til jens@gmail.com") == ["email"]


def test_street_addresses_with_house_numbers(screener: Screener) -> None:
    assert ("address", "Egevænget 7, 2. th, 8240 Risskov") in spans(
        screener, "Adresse: Egevænget 7, 2. th, 8240 Risskov"
    )
    assert ("address", "Jens Baggesens Vej 90") in spans(
        screener, "Fortovet ved Jens Baggesens Vej 90 er ødelagt"
    )
    assert ("address", "14 Park Road") in spans(screener, "I live at 14 Park Road now")
    assert "address" not in kinds(screener, "Skovvej er blevet mere trafikeret")
    assert "address" not in kinds(screener, "Have 2 børn gør det svært")


def test_named_people(screener: Screener) -> None:
    assert ("name", "Lars Nielsen") in spans(screener, "Lars Nielsen har ikke ryddet sne")
    assert ("name", "Jens") in spans(screener, "Min nabo Jens larmer")
    assert ("name", "Robert") in spans(screener, "My neighbour Robert parks on the path")
    # 'Hans' is also 'his'; 'Per' is also 'per'.
    assert "name" not in kinds(screener, "Hans cykel står i vejen")
    assert "name" not in kinds(screener, "Per uge går jeg 5 timer")


@pytest.mark.parametrize(
    "text",
    [
        "I er nogle idioter",  # inflection
        "Kraftidioter på rådhuset",  # compound
        "Du er en 1d10t",  # digits for letters
        "i.d.i.o.t.e.r alle sammen",  # inserted dots
        "a$$hole drivers",
        "kællingen fra forvaltningen",
        "You are all idiots",
        "Morons planned this",
    ],
)
def test_offensive_words_through_inflections_and_disguises(screener: Screener, text: str) -> None:
    assert "offensive" in kinds(screener, text)


@pytest.mark.parametrize(
    "text",
    [
        "Lortekommune",  # compound
        "l o r t",  # spaced out
        "F*ck det her",  # a mark for a letter
        "fuuuuck this",  # stretched
        "LORTEIDÉ",  # shouted: still swearing, not an insult
    ],
)
def test_swearing_through_disguises_is_rude_and_only_reviewed(
    screener: Screener, text: str
) -> None:
    result = screener.screen(text, languages=["da", "en"])
    assert "rude" in result.kinds
    assert "offensive" not in result.kinds
    assert result.action == REVIEW


@pytest.mark.parametrize(
    "text",
    [
        "Der er for meget hundelort på stierne",
        "Det var pissegodt med et nyt shelter",
        "Svin og kvæg på engen plejer naturen",
        "Kommunen taber penge",
        "The prickly bushes scratch children",
        "Shitake mushrooms grow here",
        "Mongoliet har meget natur",
    ],
)
def test_ordinary_words_that_look_offensive_are_not(screener: Screener, text: str) -> None:
    assert "offensive" not in kinds(screener, text)


def test_threats_are_hidden_at_once(screener: Screener) -> None:
    result = screener.screen("Jeg ved hvor du bor, borgmester", languages=["da"])
    assert result.kinds == ["threat"]
    assert result.action == HIDE
    assert "threat" in kinds(screener, "Hvis I fælder træerne, slår jeg jer ihjel")
    assert "threat" in kinds(screener, "We will burn the town hall down")
    assert "threat" not in kinds(screener, "The cold will kill the young trees")
    assert "threat" not in kinds(screener, "Jeg ved hvor skoven er")


def test_spam(screener: Screener) -> None:
    assert "link" in kinds(screener, "Køb på www.cheap-shades.ru")
    assert "link" in kinds(screener, "Tjek naturvenner.dk")
    assert "link" not in kinds(screener, "Den f.eks. foreslåede sti, bl.a. med lys")
    assert "shouting" in kinds(screener, "STOP MED AT FÆLDE TRÆERNE NU")
    assert "shouting" not in kinds(screener, "NEJ tak til flere p-pladser")
    assert "long" in kinds(screener, "stier " * 300)
    copy = "Tjen 5000 kr om dagen hjemmefra, skriv til mig"
    assert "repeated" in kinds(screener, copy, same_text_before=1)
    assert "repeated" not in kinds(screener, copy)
    # Short answers are repeated honestly all the time.
    assert "repeated" not in kinds(screener, "Flere stier", same_text_before=40)
    assert "flood" in kinds(screener, "Flere træer", author_recent=5)
    assert "flood" not in kinds(screener, "Flere træer", author_recent=4)


def test_off_language_but_not_danish_read_as_norwegian(screener: Screener) -> None:
    assert "off_language" in kinds(
        screener, "Ich finde, es sollte mehr Wege am See geben und bessere Beleuchtung."
    )
    assert "off_language" not in kinds(
        screener, "Jeg er imod mountainbikesporet, det slider på skoven."
    )
    english = "I think there should be more trails along the lake for families."
    assert "off_language" not in kinds(screener, english)
    assert "off_language" in screener.screen(english, languages=["da"]).kinds


def test_actions_follow_the_policy_and_personal_data_is_always_held(screener: Screener) -> None:
    text = "Se www.example.com"
    assert screener.screen(text, languages=["da"]).action == REVIEW
    assert screener.screen(text, languages=["da"], policy={"spam": "hide"}).action == HIDE
    lenient = {"personal_data": "allow"}
    assert screener.screen("Ring 22 33 44 55", languages=["da"], policy=lenient).action == HOLD
    assert screener.screen("Flere stier", languages=["da"]).action == "allow"


def test_masking_hides_personal_data_only(screener: Screener) -> None:
    result = screener.screen("Ring til Lars Nielsen på 22 33 44 55, idiot", languages=["da"])
    assert result.masked() == "Ring til ▒▒▒ på ▒▒▒, idiot"
    assert result.personal_data() == ["Lars Nielsen", "22 33 44 55"]


def test_a_municipality_extends_the_word_lists(screener: Screener, tmp_path: Path) -> None:
    (tmp_path / "offensive.txt").write_text("# local\nbyrådsbanditter\n", encoding="utf-8")
    local = Screener(WordLists.load(tmp_path), screener.identify_language)
    assert "offensive" in kinds(local, "De byrådsbanditter igen")
    assert "offensive" not in kinds(screener, "De byrådsbanditter igen")


def test_precision_and_recall_on_the_labelled_examples() -> None:
    """The README's table; a rule change that loses much of either shows up here."""
    scores, _mistakes = evaluate()
    for kind, score in scores.items():
        assert score.precision >= 0.75, (kind, score)
        assert score.recall >= 0.75, (kind, score)


@pytest.mark.parametrize(
    ("text", "kind", "span"),
    [
        (
            "ring 2\u200b0\u200b3\u200b0\u200b4\u200b0\u200b5\u200b0",
            "phone",
            "2\u200b0\u200b3\u200b0\u200b4\u200b0\u200b5\u200b0",
        ),
        ("mit cpr er 010190\u200b-1234", "cpr", "010190\u200b-1234"),
        ("f\u200bu\u2060c\u200dk dig", "rude", "f\u200bu\u2060c\u200dk"),
    ],
)
def test_invisible_characters_hide_nothing_from_screening(
    screener: Screener, text: str, kind: str, span: str
) -> None:
    """Zero-width characters between the digits or letters show as nothing: the text is judged
    as it shows, and the flag points at the stretch as written (for the moderator's mask)."""
    assert (kind, span) in spans(screener, text)


@pytest.mark.parametrize(
    ("text", "kind", "span"),
    [
        (
            "Borgmesteren er en \u0456d\u0456\u043et",
            "offensive",
            "\u0456d\u0456\u043et",
        ),  # Cyrillic і, о
        (
            "Borgmesteren er en \U0001d422\U0001d41d\U0001d422\U0001d428\U0001d42d",
            "offensive",
            "\U0001d422\U0001d41d\U0001d422\U0001d428\U0001d42d",
        ),  # mathematical bold
        (
            "Borgmesteren er en \uff49\uff44\uff49\uff4f\uff54",
            "offensive",
            "\uff49\uff44\uff49\uff4f\uff54",
        ),  # full width
        ("Det er noget l\u043ert", "rude", "l\u043ert"),
        ("Det er noget \u03bfg l\u03bfrt", "rude", "l\u03bfrt"),  # Greek ο
        (
            "Borgmesteren er en \uff49\uff44\uff11\uff4f\uff54",
            "offensive",
            "\uff49\uff44\uff11\uff4f\uff54",
        ),  # full width, a digit for a letter
        # A letter that lower-cases to two ("İ": i and a dot) keeps the spans in step.
        ("Hej \u0130stanbul, din idiot", "offensive", "idiot"),
    ],
)
def test_letters_from_other_scripts_that_look_latin_hide_nothing(
    screener: Screener, text: str, kind: str, span: str
) -> None:
    """A word in disguise as letters of another script or of Unicode's wide and bold forms is
    read as the Latin word it shows, and the flag points at it as written."""
    assert (kind, span) in spans(screener, text)


def test_words_of_other_scripts_keep_their_own_letters(screener: Screener) -> None:
    """Only a word mixing scripts is folded: Ukrainian and Greek text is read as itself."""
    for text in (
        "Я люблю цей парк біля озера",
        "Цей рік був важким",  # "рік" (year) drawn as "pik"
        "Το πάρκο είναι ωραίο το καλοκαίρι",
    ):
        result = screener.screen(text, languages=["da", "uk", "el"])
        assert not {"offensive", "rude"} & set(result.kinds), result.kinds


def test_direction_overrides_never_reach_what_others_see() -> None:
    """An override shows "\u202e.toidi" as "idiot." while screening reads it backwards; it is
    dropped as the text comes in. The marks that mixed Arabic and Danish text may carry stay."""
    assert clean_text("\u202e.toidi kcuf\u202c") == ".toidi kcuf"
    assert clean_text("a\u2066b\u2069c\u202ad") == "abcd"
    assert clean_text("مرحبا\u200f hej\u200e") == "مرحبا\u200f hej\u200e"
