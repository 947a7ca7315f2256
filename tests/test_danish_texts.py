"""Typed answers read as Danes write them, and the progress mark never goes backwards."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import Settings
from bot.dialogue.i18n import Catalogs
from handlers.questionnaire import progress
from handlers.questions import read_typed
from storage.models import Answer, Question


def question(kind: str, key: str = "q", qid: int = 1, **fields: object) -> Question:
    settings = {"min": 0, "max": 100} if kind == "number" else {}
    return Question(
        id=qid,
        key=key,
        kind=kind,
        text={"da": key},
        options=[],
        settings=settings,
        condition=fields.get("condition"),
    )


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("12", 12),
        ("10 gange", 10),
        ("ca. 10", 10),
        ("omkring 40 km", 40),
        ("1.000", None),
        (" 7 ", 7),
        ("-0", 0),
    ],
)
def test_a_number_is_read_with_the_words_around_it(typed: str, value: int | None) -> None:
    answer = read_typed(question("number"), typed)
    if value is None:  # 1.000 is read, but lies outside 0–100
        assert answer.error == "answer.number_out_of_range"
    else:
        assert (answer.value, answer.error) == (value, None)


@pytest.mark.parametrize("typed", ["mange", "mellem 5 og 10", "2,5", "10/12", "12abc", ""])
def test_what_is_no_whole_number_is_asked_again_as_unreadable(typed: str) -> None:
    assert read_typed(question("number"), typed).error == "answer.number_invalid"


def test_a_number_out_of_range_says_the_range_not_unreadable() -> None:
    answer = read_typed(question("number"), "500")
    assert answer.error == "answer.number_out_of_range"
    assert answer.params == {"min": 0, "max": 100}


@pytest.mark.parametrize(
    ("typed", "error", "value"),
    [
        ("8000", None, "8000"),
        ("8000 Aarhus C", None, "8000"),
        ("2100 København Ø", None, "2100"),
        ("8000, Aarhus", None, "8000"),
        ("0800", "answer.postcode_unknown", None),
        ("9999", "answer.postcode_unknown", None),
        ("800", "answer.postcode_invalid", None),
        ("80000", "answer.postcode_invalid", None),
        ("Aarhus", "answer.postcode_invalid", None),
    ],
)
def test_postcodes_as_people_write_them(typed: str, error: str | None, value: str | None) -> None:
    answer = read_typed(question("postcode"), typed)
    assert (answer.error, answer.value) == (error, value)


def test_the_progress_total_only_shrinks() -> None:
    dogs = question("yesno", "dogs", 1)
    where = question("text", "where", 2, condition={"question": "dogs", "in": ["yes"]})
    visits = question("number", "visits", 3)
    questions = [dogs, where, visits]
    assert progress(questions, {}, dogs) == (1, 3)
    said_no = {1: Answer(question_id=1, value="no", skipped=False)}
    assert progress(questions, said_no, visits) == (2, 2)
    said_yes = {1: Answer(question_id=1, value="yes", skipped=False)}
    assert progress(questions, said_yes, where) == (2, 3)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_demo_names_a_sample_data_controller_unless_one_is_set(
    make_settings: Callable[..., Settings],
) -> None:
    from bot.consultations.demo import DEMO_ORGANISATION, demo_settings

    demo = demo_settings(make_settings())
    assert demo.organisation_name == DEMO_ORGANISATION
    assert "@" in demo.privacy_contact
    kept = demo_settings(make_settings(organisation_name="Aarhus Kommune"))
    assert kept.organisation_name == "Aarhus Kommune"
    privacy = Catalogs("da").texts("da")(
        "privacy.body",
        organisation=demo.organisation_name,
        contact=demo.privacy_contact,
        retention_days=demo.inbox_retention_days,
    )
    assert "Dataansvarlig: Eksempel Kommune (demo)." in privacy
    assert "30 dage" in privacy
