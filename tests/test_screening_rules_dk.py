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


# -- numbers and places that only look like personal data ----------------------------------------


def test_tried_by_hand_a_case_number_is_no_phone(screener: Screener) -> None:
    assert kinds(screener, "Sagsnummer 2023-0456-12") == []


@pytest.mark.parametrize(
    "text",
    [
        "Sagsnummer 2023-0456-12",
        "Jeg henviser til sagsnr. 20304050",
        "Se j.nr. 20/12345 fra sidste år",
        "Journalnummer: 2030 4050",
        "Vores sag nr. 24-001234 er ikke afgjort",
        "Høringssvar, ref. 24-001234",
        "24-001234",  # grouped like a reference, not like a phone number
        "Kontonummer 1234 0012345678 hos banken.",
        # A company number is not a person's: the registry is public.
        "Foreningens CVR 32345678",
        "Det koster 1.250 kr.",
        "Mødet er 12.03.2025 kl. 19",
        "Postnummer 8000",
        "Budgettet er 2.400.000 kr. for 2026-2027",
    ],
)
def test_case_numbers_prices_and_dates_are_no_phone_or_cpr(screener: Screener, text: str) -> None:
    assert not {"phone", "cpr"} & set(kinds(screener, text))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Ring på 20 30 40 50 hvis I vil høre mere", "phone"),
        ("Min mobil er +45 20304050", "phone"),
        ("tlf. 2030 4050", "phone"),
        ("Ring 70 10 20 30", "phone"),
        ("Skriv til mig, 2030 40 50, efter kl. 16", "phone"),
        ("Mit cpr er 120385-1234, hvis I skal bruge det", "cpr"),
        ("mail mig på anne.hansen@example.dk", "email"),
    ],
)
def test_personal_data_in_sentences_is_still_found(
    screener: Screener, text: str, kind: str
) -> None:
    assert kind in kinds(screener, text)


def test_tried_by_hand_a_square_named_after_a_person_is_no_name(screener: Screener) -> None:
    assert kinds(screener, "Søren Kierkegaards Plads") == []


@pytest.mark.parametrize(
    "text",
    [
        "Der mangler bænke på Søren Kierkegaards Plads",
        "H.C. Andersens Boulevard er fyldt med biler",
        "Niels Bohrs Allé trænger til nye træer",
        "Dronning Margrethes Vej er mørk om aftenen",
        "Kong Christians Gade bør være gågade",
        "Ida Davidsens Plads har fået nye træer",
        "Anders Fogh Parken er et godt sted til picnic",
    ],
)
def test_streets_and_places_named_after_people_are_no_names(screener: Screener, text: str) -> None:
    assert "name" not in kinds(screener, text)


def test_people_are_still_named_and_a_street_with_a_number_is_an_address(
    screener: Screener,
) -> None:
    assert "name" in kinds(screener, "Jens Lund har ikke ryddet sne")
    assert "name" in kinds(screener, "Søren Kierkegaard skrev om angst")
    assert "name" in kinds(screener, "Min nabo Søren larmer")
    assert kinds(screener, "Fortovet ved Jens Baggesens Vej 4 er ødelagt") == ["address"]
