"""The screening rules on Danish consultation language: threats with words in between, special
categories of personal data (GDPR Art. 9), and numbers and places that only look like personal
data. Each rule is tested from both sides: what it must find, and the ordinary text it must not.
"""

from __future__ import annotations

import pytest

from handlers.screening.rules import HIDE, Screener, WordLists


@pytest.fixture(scope="module")
def screener() -> Screener:
    # Language plays no part in these rules; a fixed answer keeps the tests about the rules.
    return Screener(WordLists.load(), lambda text: "da")


def kinds(screener: Screener, text: str) -> list[str]:
    return screener.screen(text, languages=["da", "en"]).kinds


# -- threats -------------------------------------------------------------------------------------


def test_tried_by_hand_a_threat_with_words_in_between_is_hidden(screener: Screener) -> None:
    result = screener.screen("Jeg vil slå den idiot ihjel", languages=["da"])
    # The insult inside the threat is not reported again as offensive language.
    assert result.kinds == ["threat"]
    assert result.action == HIDE


@pytest.mark.parametrize(
    "text",
    [
        "Jeg vil slå den idiot ihjel",
        "Nogen burde slå de politikere ihjel",
        "Jeg slår borgmesteren ihjel",
        "jeg skal nok finde dig",
        "Jeg finder dig!",
        "vi finder jer, bare vent",
        "Du skal få en kugle",
        "du fortjener en kugle for panden",
        "Vi kommer efter dig.",
        "Nogen burde brænde rådhuset ned",
        "I skal alle sammen skydes",
        "Politikerne burde skydes!",
        "jeg skyder dem alle sammen",
        "Jeg stikker ham ned næste gang",
        "Jeg banker ham til plukfisk",
        "Hvis I fælder træerne, slår jeg jer ihjel",
        "I will find you",
        "Councillors should be shot.",
    ],
)
def test_threats_with_words_in_between(screener: Screener, text: str) -> None:
    assert "threat" in kinds(screener, text)


@pytest.mark.parametrize(
    "text",
    [
        "Så slår vi to fluer med ét smæk",
        "Hvis jeg skal skyde på et tal, så 200 bænke",
        # A proposal is no person: killing an idea is a figure of speech (see threats.txt).
        "Lad os slå den idé ihjel én gang for alle",
        "Lad os skyde forslaget ned",
        "Ventetiden slår os ihjel",
        "Jeg slog tiden ihjel med at læse høringen",
        "Jeg brænder for naturen i kommunen",
        "Du kan sagtens finde dig til rette i den nye hal",
        # Not at the end of a clause: help, not menace.
        "Jeg skal nok finde dig en løsning",
        "Hvor kan jeg finde dig?",
        "Cyklisterne skyder genvej over græsset",
        "Mødet var dræbende kedeligt",
        "Husk at banke på døren",
        "Projektet skal skydes i gang til foråret",
        "Stearinlyset brænder helt ned",
        "Vi stikker en pind ned ved hvert træ",
        "Derfor stemmer jeg for forslaget",
    ],
)
def test_figures_of_speech_are_no_threats(screener: Screener, text: str) -> None:
    assert "threat" not in kinds(screener, text)
