"""The screening rules on Danish consultation language: threats with words in between, special
categories of personal data (GDPR Art. 9), and numbers and places that only look like personal
data. Each rule is tested from both sides: what it must find, and the ordinary text it must not.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.app import BorgerDialog
from bot.consultations.definition import DefinitionError, parse_definition
from bot.consultations.demo import demo_source
from bot.dialogue.i18n import Catalogs
from handlers.moderation.cards import describe
from handlers.screening.rules import (
    ALLOW,
    HIDE,
    HOLD,
    REVIEW,
    SPECIAL_CATEGORY,
    Flag,
    Screener,
    WordLists,
)
from tests.citizens import import_consultation
from tests.fake_telegram import FakeBot
from tests.moderators import Moderator, consultation_source, join, new_card


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
        "I skal alle sammen skydes for det her",
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
        "Pengene skal skydes ind i projektet",
        "Forslaget bør skydes ned",
        "Stearinlyset brænder helt ned",
        "Vi stikker en pind ned ved hvert træ",
        "Derfor stemmer jeg for forslaget",
        # Animals and weeds are no targets; a past deed is a report, not a threat.
        "Vi slår dræbersneglene ihjel med saks",
        "Kommunisterne har slået millioner ihjel",
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
        "Vinder i 2017 2018 2019 og 2020",
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


# -- special categories of personal data (GDPR Art. 9) -------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("jeg har diabetes", "health"),
        ("jeg stemmer på Venstre", "politics"),
    ],
)
def test_tried_by_hand_special_categories_are_reviewed(
    screener: Screener, text: str, kind: str
) -> None:
    result = screener.screen(text, languages=["da"])
    assert result.kinds == [kind]
    assert result.flags[0].category == SPECIAL_CATEGORY
    assert result.action == REVIEW


@pytest.mark.parametrize(
    ("text", "kind", "term"),
    [
        ("Jeg har diabetes og kan ikke gå langt", "health", "diabetes"),
        ("Min mand har kræft, så vi kører meget til hospitalet", "health", "kræft"),
        ("Jeg er i behandling for depression", "health", "depression"),
        ("Min datter er autist og har brug for ro", "health", "autist"),
        ("Jeg har selv type 2-diabetes", "health", "type 2-diabetes"),
        ("Jeg er gravid og savner bænke", "health", "gravid"),
        ("Jeg går til psykolog hver uge", "health", "psykolog"),
        ("Min mor sidder i kørestol", "health", "kørestol"),
        ("Jeg er diabetiker og går meget", "health", "diabetiker"),
        ("Min far har demens", "health", "demens"),
        ("Jeg er socialdemokrat", "politics", "socialdemokrat"),
        ("Jeg er medlem af Venstres Ungdom", "politics", "Venstres Ungdom"),
        ("I er alle sammen muslimer", "religion", "muslimer"),
        ("Jeg var til gudstjeneste i søndags", "religion", "gudstjeneste"),
        ("Jeg er ateist", "religion", "ateist"),
        ("Jeg stemmer på Venstre", "politics", "Venstre"),
        ("Derfor stemmer jeg på SF", "politics", "SF"),
        ("Jeg har altid stemt på Dansk Folkeparti", "politics", "Dansk Folkeparti"),
        ("Jeg er medlem af Socialdemokratiet", "politics", "Socialdemokratiet"),
        ("Min kone er medlem af Radikale Venstre", "politics", "Radikale Venstre"),
        ("Jeg er medlem af 3F", "union", "3F"),
        ("Min mand er i FOA", "union", "FOA"),
        ("Jeg er organiseret i Dansk Metal", "union", "Dansk Metal"),
        ("Jeg er muslim og savner et bederum", "religion", "muslim"),
        ("Vi går i moskéen hver fredag", "religion", "moskéen"),
        ("Som homoseksuel oplever jeg tit at blive overset", "sexuality", "homoseksuel"),
        ("Min søn er bøsse", "sexuality", "bøsse"),
        ("Min mand er af tyrkisk oprindelse", "ethnicity", "af tyrkisk oprindelse"),
        ("Som sort kvinde føler jeg mig utryg om aftenen", "ethnicity", "sort kvinde"),
        ("I have diabetes", "health", "diabetes"),
        ("My son is autistic", "health", "autistic"),
        ("I vote Labour", "politics", "Labour"),
        ("As a Muslim, I think the prayer room matters", "religion", "Muslim"),
        ("I'm a member of Unite", "union", "Unite"),
    ],
)
def test_special_categories_about_the_writer_or_someone_close(
    screener: Screener, text: str, kind: str, term: str
) -> None:
    flags = [f for f in screener.screen(text, languages=["da", "en"]).flags if f.kind == kind]
    assert [f.detail for f in flags] == [term]


def test_special_categories_about_a_named_person_are_also_personal_data(
    screener: Screener,
) -> None:
    result = screener.screen("Jens Hansen er alkoholiker", languages=["da"])
    assert result.kinds == ["name", "health"]
    # The name holds it; the health flag tells the moderator why it matters more than a name.
    assert result.action == HOLD


@pytest.mark.parametrize(
    "text",
    [
        "Diabetes-patienter bør have bedre hjælp",
        "Diabetespatienter bør have bedre hjælp",
        "Venstre foreslog en skattelettelse",
        "Kirken bør holde åben om aftenen",
        "Psykiatrien mangler penge",
        "Jeg stemmer for forslaget",
        "Jeg har en idé til stien",
        "Drej til venstre ved kirken",
        "Jeg cykler altid i venstre side",
        "3F har lavet en aftale med kommunen",
        "Hvis du har diabetes, er det svært at få hjælp",
        "Jeg har angst for at cykle der om aftenen",
        "Jeg er ikke blind for problemet",
        "Min kone er psykolog",
        "Jeg er god til at cykle",
        "Min kat er sort",
        "Vi var i kirken til koncert",
        "Mange ældre har demens, så skiltene skal være tydelige",
        "The Labour government built the road",
        "Min nabo er konservativ i sin smag",
        "Jeg er medlem af grundejerforeningen",
        "Jeg er i tvivl om forslaget",
        "Jeg har kræfter til at hjælpe",
        "Jeg er venstrehåndet",
        "Min mand er tømrer",
        "Vi var til messe i Herning",
        "Jeg er fra Tyrkiet",
    ],
)
def test_policy_talk_is_no_special_category(screener: Screener, text: str) -> None:
    assert not [
        f for f in screener.screen(text, languages=["da"]).flags if f.category == SPECIAL_CATEGORY
    ]


def test_special_categories_follow_the_consultation_policy(screener: Screener) -> None:
    text = "Jeg har diabetes"
    # Not held by force as personal data is: a health consultation may allow it outright ...
    assert screener.screen(text, languages=["da"], policy={SPECIAL_CATEGORY: ALLOW}).action == ALLOW
    # ... and staff who want more care get it.
    assert screener.screen(text, languages=["da"], policy={SPECIAL_CATEGORY: HOLD}).action == HOLD
    assert screener.screen(text, languages=["da"], policy={SPECIAL_CATEGORY: HIDE}).action == HIDE


def test_staff_set_the_special_category_action_in_the_consultation_file() -> None:
    zone = ZoneInfo("Europe/Copenhagen")
    source = demo_source()
    assert "  special_category: review\n" in source
    assert parse_definition(source, zone).moderation[SPECIAL_CATEGORY] == REVIEW
    allowed = source.replace("  special_category: review\n", "  special_category: allow\n")
    assert parse_definition(allowed, zone).moderation[SPECIAL_CATEGORY] == ALLOW
    wrong = source.replace("  special_category: review\n", "  special_category: maybe\n")
    with pytest.raises(DefinitionError) as raised:
        parse_definition(wrong, zone)
    assert [e.field for e in raised.value.errors] == ["moderation.special_category"]


def test_a_municipality_extends_a_special_category_list(tmp_path: Path) -> None:
    (tmp_path / "special_union.txt").write_text("# local\nLokalklubben\n", encoding="utf-8")
    local = Screener(WordLists.load(tmp_path), lambda text: "da")
    assert "union" in kinds(local, "Jeg er medlem af Lokalklubben")
    assert "union" not in kinds(
        Screener(WordLists.load(), lambda text: "da"), "Jeg er medlem af Lokalklubben"
    )


def test_moderator_cards_describe_special_categories() -> None:
    catalogs = Catalogs("da")
    flag = Flag("health", 0, 16, "diabetes")
    danish = describe(catalogs.texts("da"), flag)
    assert danish.startswith("Særlig kategori (helbred)")
    assert "diabetes" in danish
    assert describe(catalogs.texts("en"), flag).startswith("Special category (health)")


# -- through the bot: the citizen's reason and the moderator's card ------------------------------


async def test_a_health_detail_is_reviewed_and_a_phone_number_still_held_for_its_own_reason(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 321)
    anne = Moderator(fake_bot, 901)
    # Reviewed: in use at once, the citizen is not told it waits, the card says why it is there.
    (next_question,) = await anna.write("Jeg har diabetes, så lav flere bænke")
    assert (next_question.text or "").startswith("2/2")
    card = await new_card(anne, 0)
    assert "Særlig kategori (helbred)" in (card.text or "")
    assert "vist med det samme, gennemses bagefter" in (card.text or "")
    # Held for the phone number, and told so: not about health, which came first in the text.
    held, _summary, _hear_back = await anna.write("Jeg har astma, ring 22 33 44 55", new=3)
    assert "personoplysninger" in (held.text or "")
    assert "helbred" not in (held.text or "")


async def test_a_consultation_that_holds_special_categories_says_why(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source("moderation: {special_category: hold}"))
    anna = await join(fake_bot, 322)
    held, _next_question = await anna.write("Jeg stemmer på Venstre, så lav flere p-pladser", new=2)
    assert "En moderator læser dit svar" in (held.text or "")
    assert "politisk holdning" in (held.text or "")
    card = await new_card(Moderator(fake_bot, 901), 0)
    assert "Særlig kategori (politisk holdning)" in (card.text or "")
