"""Staff define, inspect, link and export consultations from the command line.

The commands run in-process (click's CliRunner); a refused import and a refused export run as a
child process, through the real entry point.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openpyxl import load_workbook

from tests.citizens import example_with_round, open_now, with_ideas_phase
from tests.cli import borgerdialog, in_process

BROKEN = textwrap.dedent("""\
    slug: Friluftsliv!
    languages: [da, en]
    title:
      da: Ny friluftspolitik
    purpose: Kommunen vil høre fra dig.
    basis:
      decided: {da: Budgettet, en: The budget}
      influence: {da: Prioriteringen, en: Priorities}
      decides: {da: Udvalget, en: The committee}
    target_group:
      description: {da: Alle, en: Everyone}
    citizen_role: co-creation
    organiser: {name: Teknik og Miljø, contact: tm@kommune.example}
    results: {da: I marts, en: In March}
    rounds:
      - opens: 2027-02-01 09:00
        closes: 2027-01-01 09:00
    questions:
      - id: age
        kind: number
        text: {da: Alder, en: Age}
        min: 120
        max: 15
      - id: age
        kind: single
        text: {da: Område, en: Area}
        options:
          - {id: nord, label: {da: Nord, en: North}}
      - id: why
        kind: essay
        text: {da: Hvorfor, en: Why}
      - id: where
        kind: text
        text: {da: Hvor, en: Where}
        when: {question: later, in: [x]}
    """)


def environment(tmp_path: Path) -> dict[str, str]:
    return {"BORGERDIALOG_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"}


def test_a_file_with_ten_mistakes_reports_all_ten_and_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = borgerdialog(
        "consultation", "import", str(path), cwd=tmp_path, env=environment(tmp_path)
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "borgerdialog: 10 mistakes; nothing was imported"
    assert lines[:-1] == [
        f"{path}: line 1: slug: must be 2-40 lower-case letters, digits or hyphens "
        "(it goes in links)",
        f"{path}: line 3: title.en: is missing",
        f"{path}: line 5: purpose.en: is missing",
        f"{path}: line 12: citizen_role: must be one of co-design, co-implementation, "
        "co-evaluation (got 'co-creation')",
        f"{path}: line 17: rounds[0].closes: must be after opens",
        f"{path}: line 23: questions[0].max: must be above min (120)",
        f"{path}: line 24: questions[1].id: repeats the question id 'age'",
        f"{path}: line 27: questions[1].options: must list at least two options",
        f"{path}: line 30: questions[2].kind: must be one of single, multiple, district, "
        "yesno, scale, number, postcode, text, idea (got 'essay')",
        f"{path}: line 35: questions[3].when.question: 'later' is not an earlier question",
    ]
    listing = in_process("consultation", "list", cwd=tmp_path, env=environment(tmp_path))
    assert "No consultations yet" in listing.stdout


def test_not_yaml_at_all_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("slug: [unclosed\n", encoding="utf-8")
    result = in_process(
        "consultation", "import", str(path), cwd=tmp_path, env=environment(tmp_path)
    )
    assert result.returncode == 2
    assert "is not valid YAML" in result.stderr
    missing = in_process(
        "consultation",
        "import",
        str(tmp_path / "nope.yaml"),
        cwd=tmp_path,
        env=environment(tmp_path),
    )
    assert missing.returncode == 2
    assert "cannot be read" in missing.stderr


def test_import_list_show_link_and_reimport(tmp_path: Path) -> None:
    env = environment(tmp_path)
    path = tmp_path / "friluftsliv.yaml"
    path.write_text(open_now(), encoding="utf-8")
    created = in_process("consultation", "import", str(path), cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Created consultation 'friluftsliv': 9 questions, 1 round")

    listing = in_process("consultation", "list", cwd=tmp_path, env=env)
    assert "friluftsliv" in listing.stdout
    assert " open " in listing.stdout
    shown = in_process("consultation", "show", "friluftsliv", cwd=tmp_path, env=env)
    assert "dog_zones_where (text, optional, when dog_zones in yes; 0 answers)" in shown.stdout

    link = in_process(
        "consultation",
        "link",
        "friluftsliv",
        "--bot",
        "@kommune_bot",
        "--qr",
        str(tmp_path / "qr.png"),
        cwd=tmp_path,
        env=env,
    )
    assert link.stdout.strip() == "https://t.me/kommune_bot?start=friluftsliv"
    assert (tmp_path / "qr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    unknown = in_process("consultation", "show", "nope", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "borgerdialog: no consultation 'nope' (see 'borgerdialog consultation list')"
    )

    # Re-importing with a changed text and a removed question updates in place.
    changed = path.read_text(encoding="utf-8").replace(
        "Hvor gammel er du?", "Hvilken aldersgruppe er du i?"
    )
    cut = changed.index("  # postcode:")
    end = changed.index("  # idea:")
    path.write_text(changed[:cut] + changed[end:], encoding="utf-8")
    updated = in_process("consultation", "import", str(path), cwd=tmp_path, env=env)
    assert updated.returncode == 0, updated.stderr
    assert "removed questions without answers: postcode" in updated.stdout
    shown = in_process("consultation", "show", "friluftsliv", cwd=tmp_path, env=env)
    assert "Hvilken aldersgruppe er du i?" in shown.stdout
    assert "postcode (postcode, optional, archived; 0 answers)" in shown.stdout


def test_the_file_as_imported_comes_back_to_change_and_import_again(tmp_path: Path) -> None:
    """`consultation file` prints the newest imported file, comments and all; importing what
    it printed changes nothing; a consultation without a kept file is one clear line."""
    env = environment(tmp_path)
    path = tmp_path / "friluftsliv.yaml"
    first = open_now()
    path.write_text(first, encoding="utf-8")
    assert in_process("consultation", "import", str(path), cwd=tmp_path, env=env).returncode == 0
    printed = in_process("consultation", "file", "friluftsliv", cwd=tmp_path, env=env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == first
    assert "# " in printed.stdout  # the file's comments, which the tables do not hold

    second = first.replace("Hvor gammel er du?", "Hvilken aldersgruppe er du i?")
    path.write_text(second, encoding="utf-8")
    assert in_process("consultation", "import", str(path), cwd=tmp_path, env=env).returncode == 0
    assert in_process("consultation", "file", "friluftsliv", cwd=tmp_path, env=env).stdout == second

    unknown = in_process("consultation", "file", "nope", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "borgerdialog: no consultation 'nope' (see 'borgerdialog consultation list')"
    )


def test_check_says_what_an_import_would_change_and_imports_nothing(tmp_path: Path) -> None:
    env = environment(tmp_path)
    path = tmp_path / "friluftsliv.yaml"
    first = open_now()
    path.write_text(first, encoding="utf-8")
    checked = in_process("consultation", "import", "--check", str(path), cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(
        "The file is correct; nothing was imported. Importing it would create consultation "
        "'friluftsliv': 9 questions, 1 round(s)."
    )
    assert "automatic post(s) would be added" in checked.stdout
    listed = in_process("consultation", "list", cwd=tmp_path, env=env)
    assert "No consultations yet" in listed.stdout

    assert in_process("consultation", "import", str(path), cwd=tmp_path, env=env).returncode == 0
    path.write_text(
        first.replace("Hvor gammel er du?", "Hvilken aldersgruppe er du i?").replace(
            "da: Ny friluftspolitik", "da: Friluftsliv i Nordparken"
        ),
        encoding="utf-8",
    )
    checked = in_process("consultation", "import", "--check", str(path), cwd=tmp_path, env=env)
    assert "Importing it would update consultation 'friluftsliv'" in checked.stdout
    assert "  changed fields: title\n" in checked.stdout
    assert "  changed questions: age_band\n" in checked.stdout
    assert "  round 1:" not in checked.stdout  # the times stayed
    shown = in_process("consultation", "show", "friluftsliv", cwd=tmp_path, env=env).stdout
    assert "Ny friluftspolitik" in shown
    assert "Hvilken aldersgruppe" not in shown

    path.write_text(first, encoding="utf-8")
    again = in_process("consultation", "import", str(path), cwd=tmp_path, env=env)
    assert "nothing changed: the file says what the consultation already did" in again.stdout
    # Only the order the questions are asked in: that is a change too.
    start, cut = first.index("  # postcode:"), first.index("  # idea:")
    end = first.index("\nideas:") + 1 if "\nideas:" in first else len(first)
    assert start < cut < end
    path.write_text(first[:start] + first[cut:end] + first[start:cut] + first[end:], "utf-8")
    reordered = in_process("consultation", "import", "--check", str(path), cwd=tmp_path, env=env)
    assert "  changed fields: questions\n" in reordered.stdout, reordered.stderr


def test_delete_asks_for_the_slug_first_and_is_in_the_audit_log(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path)
    path = tmp_path / "friluftsliv.yaml"
    path.write_text(open_now(), encoding="utf-8")
    assert in_process("consultation", "import", str(path), cwd=tmp_path, env=env).returncode == 0
    asked = in_process("consultation", "delete", "friluftsliv", cwd=tmp_path, env=env, stdin="ja\n")
    assert asked.returncode == 2
    assert "It cannot be undone: export first" in asked.stdout
    assert asked.stderr.strip() == "borgerdialog: 'ja' is not 'friluftsliv'; nothing was deleted"
    assert "friluftsliv" in in_process("consultation", "list", cwd=tmp_path, env=env).stdout

    deleted = in_process(
        "consultation", "delete", "friluftsliv", cwd=tmp_path, env=env, stdin="Friluftsliv \n"
    )
    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted consultation 'friluftsliv': 0 participation(s)" in deleted.stdout
    assert (
        "No consultations yet" in in_process("consultation", "list", cwd=tmp_path, env=env).stdout
    )
    log = in_process("moderation", "log", cwd=tmp_path, env=env).stdout
    assert ",friluftsliv,consultation_deleted,staff (command line)," in log
    assert ",p0 a0 s0 v0 f0," in log, "the deletion's counts, as codes"
    again = in_process("consultation", "delete", "friluftsliv", "--yes", cwd=tmp_path, env=env)
    assert again.returncode == 2
    assert "no consultation 'friluftsliv'" in again.stderr


def test_exports_in_every_format_agree(tmp_path: Path) -> None:
    env = environment(tmp_path)
    path = tmp_path / "friluftsliv.yaml"
    path.write_text(open_now(), encoding="utf-8")
    in_process("consultation", "import", str(path), cwd=tmp_path, env=env)
    for file_format in ("csv", "xlsx", "json"):
        result = in_process("export", "friluftsliv", "--format", file_format, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    text = (tmp_path / "friluftsliv.csv").read_text("utf-8-sig")
    header = next(csv.reader(io.StringIO(text), delimiter=";"))
    workbook = load_workbook(tmp_path / "friluftsliv.xlsx")
    assert [cell.value for cell in workbook.active[1]] == header
    document = json.loads((tmp_path / "friluftsliv.json").read_text("utf-8"))
    assert [q["id"] for q in document["questions"]][:2] == ["age_band", "district"]
    # People read the spreadsheets (Danish headers, the questions' texts); programs the JSON.
    assert header[:3] == ["Deltager", "Kanal", "Status"]
    assert header[6] == "Hvor gammel er du?"
    # Through the real entry point (a child process): the export command's exit code.
    refused = borgerdialog(
        "export", "friluftsliv", "--format", "xlsx", "-o", "-", cwd=tmp_path, env=env
    )
    assert refused.returncode == 2


def test_a_consultation_taking_ideas_after_its_round_is_listed_open(tmp_path: Path) -> None:
    """The ideas phase counts as much as a round: after the last round, while citizens still
    write and vote, `consultation list` says open (it said closed)."""
    env = environment(tmp_path)
    now = datetime.now(UTC)
    source = with_ideas_phase(
        example_with_round(now - timedelta(days=60), now - timedelta(days=20), "idebank"),
        now - timedelta(days=30),
        now + timedelta(days=9),
    )
    path = tmp_path / "idebank.yaml"
    path.write_text(source, encoding="utf-8")
    created = in_process("consultation", "import", str(path), cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    listing = in_process("consultation", "list", cwd=tmp_path, env=env)
    (row,) = [line for line in listing.stdout.splitlines() if line.startswith("idebank")]
    assert row.split()[1] == "open"
    # The ideas phase a week longer: the import says so with the times.
    longer = with_ideas_phase(
        example_with_round(now - timedelta(days=60), now - timedelta(days=20), "idebank"),
        now - timedelta(days=30),
        now + timedelta(days=16),
    )
    path.write_text(longer, encoding="utf-8")
    updated = in_process("consultation", "import", str(path), cwd=tmp_path, env=env)
    assert updated.returncode == 0, updated.stderr
    (line,) = [row for row in updated.stdout.splitlines() if "ideas phase" in row]
    assert line.strip().startswith("ideas phase: ")
    assert "(was " in line
