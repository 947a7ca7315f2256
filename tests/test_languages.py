"""The language of citizens' chat text (bot/dialogue/i18n/languages.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.dialogue.i18n import make_language_detector, make_language_identifier
from bot.dialogue.i18n.languages import explain, parse_candidates
from tests.language_eval import evaluate_languages

identify = make_language_identifier()

DANISH = "Alt i alt en velfortjent sejr, hvor vores fokus på organisering og disciplin gav pote."


def test_danish_sentences_long_and_in_capitals() -> None:
    assert identify(DANISH) == "da"
    assert identify(DANISH.upper()) == "da"
    assert identify("VI VIL HAVE FLERE CYKELSTIER I BYEN") == "da"


@pytest.mark.parametrize(
    "phrase",
    [
        "flere cykelstier",
        "god idé",
        "mere lys",
        "ja tak",
        "nej tak",
        "bedre busser",
    ],
)
def test_danish_two_word_phrases(phrase: str) -> None:
    assert identify(phrase) == "da"


def test_norwegian_and_swedish_are_told_from_danish() -> None:
    assert (
        identify("Jeg synes kommunen burde bygge flere sykkelstier og gjøre noe med trafikken.")
        == "nb"
    )
    assert (
        identify("Jag tycker att kommunen borde bygga fler cykelvägar och göra något åt trafiken.")
        == "sv"
    )
    assert (
        identify("Jeg synes kommunen burde bygge flere cykelstier og gøre noget ved trafikken.")
        == "da"
    )


@pytest.mark.parametrize("text", ["12345", "👍", "cykelstier", "", "   ", "https://example.com 42"])
def test_no_language_without_two_words(text: str) -> None:
    assert identify(text) is None
    assert explain(text).reason == "fewer than two words"


def test_the_same_text_always_gets_the_same_answer() -> None:
    text = "Det er en god idé men hvad koster det"
    assert {identify(text) for _ in range(5)} == {identify(text)}


def test_explain_gives_the_scores_behind_the_choice() -> None:
    reading = explain(DANISH)
    assert reading.language == "da"
    assert reading.scores[0][0] == "da"
    assert abs(sum(score for _, score in reading.scores) - 1) < 0.01
    assert explain("مرحبا بكم في المدينة").language == "ar"
    assert explain("Дякую за вашу ідею").language == "uk"


def test_replies_to_scandinavians_in_danish_and_to_others_by_default() -> None:
    detect = make_language_detector()
    assert detect("Jag tycker att kommunen borde bygga fler cykelvägar.") == "da"
    assert detect("I think there should be more trails along the lake.") == "en"
    assert detect("Ich finde, es sollte mehr Wege am See geben.") is None


def test_candidates_are_read_with_their_weights() -> None:
    assert parse_candidates("da:3,en") == {"da": 0.75, "en": 0.25}
    with pytest.raises(ValueError, match="unknown language"):
        parse_candidates("da,xx")
    with pytest.raises(ValueError, match="positive"):
        parse_candidates("da:-1")
    only_danish_english = {"da": 0.5, "en": 0.5}
    assert make_language_identifier(only_danish_english)("Ich finde es gut") in {"da", "en"}


def test_held_out_figures_meet_the_targets() -> None:
    """Issue 18's targets, on the held-out part (the detector was tuned on the other part)."""
    scores = {s.language: s.accuracy for s in evaluate_languages(only_part="heldout")}
    assert scores["da"] >= 0.99
    assert scores["da two-word"] >= 0.90
    for language in ("en", "de", "sv", "ar", "tr", "pl", "uk", "so"):
        assert scores[language] >= 0.97, language


def test_a_demonstrative_before_a_definite_noun_is_norwegian() -> None:
    """Norwegian says "denne siden", Danish "denne side"; a noun that ends so in its own form
    ("denne aften", "dette budget") is no sign of Norwegian."""
    assert identify("Er du sikker på at du vil slette denne siden?") == "nb"
    assert identify("Er du sikker på at du vil slette denne side?") == "da"
    assert identify("Jeg synes dette forslaget er bra for byen.") == "nb"
    assert identify("Jeg synes dette forslag er godt for byen.") == "da"
    assert identify("Vi mødes ved søen denne aften klokken syv.") == "da"
    assert identify("Kommunen har lagt dette budget for næste år.") == "da"


@pytest.mark.xfail(
    strict=True,
    reason=(
        "Norwegian Bokmål is still read as Danish too often: 0.959 held out (305 of 318). "
        "On a second batch of package catalogs added afterwards and measured once as it came "
        "(pretix, weblate, plone, django-oscar), 94 of 100 held out; on the first, 93 of 96. "
        "Most misses are correct Danish word for word ('Har du allerede en konto?', 'Feltet "
        "kan ikke være tomt.'), and the Danish prior leans such a text to Danish on purpose"
    ),
)
def test_held_out_norwegian_meets_the_target() -> None:
    scores = {s.language: s.accuracy for s in evaluate_languages(only_part="heldout")}
    assert scores["nb"] >= 0.97


def test_the_running_bot_reads_languages_without_the_build_packages() -> None:
    """The models are weight tables: detection never imports scikit-learn or wordfreq."""
    code = (
        "import sys; from bot.dialogue.i18n.languages import explain; "
        "explain('Jeg synes kommunen burde bygge flere sykkelstier og gjøre noe med trafikken.'); "
        "print(sorted({'sklearn', 'wordfreq'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_letters_spaced_out_are_no_language() -> None:
    """ "l o r t" is a word in disguise (screening reads it as one), not a text to place."""
    reading = explain("l o r t")
    assert reading.language is None
    assert reading.reason == "single letters"
    assert explain("i morgen").language == "da"
