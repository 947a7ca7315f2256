"""The learned offensive-language model: its two bands, swearing reviewed and never held, the
file it ships in, the script that rebuilds it, and the scores ``borgerdialog screen --explain``
shows. The model is trained on the DKHate training split (see handlers/screening/data)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bot.app import BorgerDialog
from bot.dialogue.i18n import make_language_identifier
from handlers.screening.build_offensive_model import CORPUS_FILE, shipped_list_digests
from handlers.screening.build_offensive_model import main as build_model
from handlers.screening.offensive_model import (
    BORDERLINE,
    CLEAR,
    MODEL_FILE,
    NONE,
    OffensiveModel,
    features,
)
from handlers.screening.rules import HIDE, HOLD, REVIEW, Screener, WordLists
from storage.models import Answer, Visibility
from tests.citizens import import_consultation
from tests.cli import in_process
from tests.conftest import model_rows
from tests.fake_telegram import FakeBot
from tests.moderators import Moderator, consultation_source, join, new_card


@pytest.fixture(scope="module")
def lists() -> WordLists:
    return WordLists.load()


@pytest.fixture(scope="module")
def model() -> OffensiveModel:
    return OffensiveModel.load()


@pytest.fixture(scope="module")
def screener(lists: WordLists, model: OffensiveModel) -> Screener:
    return Screener(lists, make_language_identifier(), offensive_model=model)


# The "tried by hand": everyday Danish swearing was held; it is to be reviewed.
@pytest.mark.parametrize("text", ["noget lort", "Hold kæft hvor er det dumt", "klaphatte"])
def test_everyday_swearing_is_reviewed_not_held(screener: Screener, text: str) -> None:
    result = screener.screen(text, languages=["da"])
    assert result.kinds == ["rude"]
    assert result.action == REVIEW


def test_swearing_stays_reviewed_where_a_consultation_holds_or_hides_offensive_language(
    screener: Screener,
) -> None:
    for strict in (HOLD, HIDE):
        result = screener.screen(
            "Det er fandme for dårligt", languages=["da"], policy={"offensive": strict}
        )
        assert result.action == REVIEW
        insult = screener.screen("Du er en idiot", languages=["da"], policy={"offensive": strict})
        assert insult.action == strict
    allowed = screener.screen("noget lort", languages=["da"], policy={"offensive": "allow"})
    assert allowed.action == "allow"


def test_the_model_finds_what_no_list_names(screener: Screener) -> None:
    """'røvfuld' is on no list of flags; the model still holds the text, and the card says why."""
    result = screener.screen(
        "De skulle have en røvfuld så stor at de ikke ved hvad de hedder", languages=["da"]
    )
    assert result.kinds == ["offensive"]
    assert result.action == HOLD
    (flag,) = result.flags
    assert "«røvfuld»" in flag.detail
    assert flag.detail.startswith("0.")


def test_ordinary_contributions_pass(screener: Screener) -> None:
    for text in (
        "Jeg synes vi skal have flere cykelstier langs åen",
        "Det var pissegodt at få et nyt shelter i Egå",
        "Kommunen taber penge på at lade stierne forfalde",
        "Svin og kvæg på engen er en fin måde at pleje naturen på",
        "Please add more benches along the lake",
    ):
        result = screener.screen(text, languages=["da", "en"])
        assert result.action == "allow", (text, result.flags)


def test_swearing_alone_never_makes_a_text_clear(lists: WordLists, model: OffensiveModel) -> None:
    for text in ("LORTEIDÉ", "fucking lort", "hvad fanden laver I"):
        score = model.score(text, lists)
        assert score.probability >= model.borderline_from
        assert score.band == BORDERLINE, (text, score)
    assert model.score("Du er en idiot", lists).band == CLEAR
    assert model.score("Flere bænke ved søen, tak", lists).band == NONE


def test_the_shipped_model_file_names_its_data_and_its_figures(model: OffensiveModel) -> None:
    with gzip.open(MODEL_FILE, "rt", encoding="utf-8") as file:
        stored = json.load(file)
    assert "Sigurbergsson" in stored["about"]["trained_on"]
    assert "CC BY 4.0" in stored["about"]["trained_on"]
    measured = model.about["cross_validated"]
    assert isinstance(measured, dict)
    # The cross-validated figures the README quotes; a rebuild that loses much shows up here.
    assert measured["offensive_flagged"] >= 0.70
    assert measured["clean_flagged"] <= 0.10
    assert 0 < model.borderline_from <= model.clear_from < 1
    # No comment text is in the file: only features (words, pairs, letter groups) and weights.
    assert all(name[:2] in ("w:", "b:", "c:", "x:") for name in model.weights)


def test_the_model_was_built_with_the_lists_as_they_ship(model: OffensiveModel) -> None:
    """Its list features mean what they meant in training only if the lists are unchanged."""
    assert model.about["lists"] == shipped_list_digests(), (
        "a word list changed: rebuild the model with python -m "
        "handlers.screening.build_offensive_model --data ../shared/data/dkhate-train"
    )


def test_the_rebuild_script_makes_a_working_model(tmp_path: Path, lists: WordLists) -> None:
    """The script on a small corpus in DKHate's format (the real one takes a minute)."""
    rude = ["Du er en idiot", "I er nogle klaphatte", "Sikke en flok aber", "Hold kæft, fjols"]
    fine = [
        "Flere stier tak",
        "Godt forslag om bænke",
        "Bussen er for sjælden",
        "Mere lys i parken",
    ]
    rows = ["id\ttweet\tsubtask_a"]
    for i in range(10):
        rows += [f"{i}1\t{rude[i % 4]} nummer {i}\tOFF", f"{i}2\t{fine[i % 4]} nummer {i}\tNOT"]
        rows += [f"{i}3\t{fine[(i + 1) % 4]} igen {i}\tNOT"]
    rows.append("9999\tbroken line without a label")
    (tmp_path / CORPUS_FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "model.json.gz"
    build_model(["--data", str(tmp_path), "--out", str(out), "--keep", "500"])
    rebuilt = OffensiveModel.load(out)
    assert len(rebuilt.weights) <= 500
    assert rebuilt.about["comments"] == 30
    assert (
        rebuilt.score("Du er en idiot", lists).probability
        > rebuilt.score("Flere stier tak", lists).probability
    )
    with pytest.raises(SystemExit) as missing:
        build_model(["--data", str(tmp_path / "nowhere")])
    assert missing.value.code == 2


def test_features_are_the_same_however_a_word_is_disguised(lists: WordLists) -> None:
    assert features("idiot", lists) == features("1d10t", lists) == features("i.d.i.o.t", lists)


def test_screen_explain_shows_the_scores_behind_flags_and_language(tmp_path: Path) -> None:
    done = in_process(
        "screen",
        "--explain",
        "--languages",
        "da",
        stdin="noget lort\nJeg synes vi skal have flere cykelstier\n",
        cwd=tmp_path,
        env={"BORGERDIALOG_DATA_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    sworn, ordinary = (json.loads(line) for line in done.stdout.splitlines())
    offensive = sworn["explain"]["offensive"]
    assert offensive["band"] == "borderline"
    assert offensive["probability"] > offensive["borderline_from"]
    assert offensive["probability_without_swearing"] < offensive["clear_from"]
    assert offensive["weighed_most"][0][0] == "swearing «lort»"
    assert ordinary["explain"]["offensive"]["band"] == "none"
    language = ordinary["explain"]["language"]
    assert language["language"] == "da"
    assert language["scores"][0][0] == "da"
    assert language["decided_by"]
    # Without --explain the records keep their shape.
    plain = in_process("screen", stdin="noget lort\n", cwd=tmp_path, env={})
    assert "explain" not in json.loads(plain.stdout)


async def test_swearing_through_the_bot_is_shown_at_once_and_reviewed(
    app: BorgerDialog, fake_bot: FakeBot
) -> None:
    await import_consultation(app, consultation_source())
    anna = await join(fake_bot, 341)
    anne = Moderator(fake_bot, 901)
    (next_question,) = await anna.write("Det er noget lort med den vej")
    # Not told it waits for a moderator: the answer is in use, and the next question follows.
    assert (next_question.text or "").startswith("2/2")
    card = await new_card(anne, 0)
    assert "Bandeord eller uhøfligt sprog" in (card.text or "")
    assert "«lort»" in (card.text or "")
    (answer,) = [row[0] for row in await model_rows(app, Answer)]
    assert answer.visibility == Visibility.VISIBLE
