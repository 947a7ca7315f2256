"""Hostile input at the command line: each is one line on stderr starting "borgerdialog: " and
exit code 2, never a traceback; output that cannot be written says so, and a closed pipe ends
the command quietly.

Most commands run in-process (click's CliRunner); what depends on the real process (the
locale's standard input, a closed pipe, a full disk as standard output) runs as a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import IO

import pytest
from click.testing import CliRunner, Result

from bot.cli import main
from tests.citizens import open_now
from tests.cli import Cli, deadline, kept_logging, no_traceback
from tests.ideas import ideas_source

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# Beyond any 64-bit integer (OverflowError in the drivers), and just beyond PostgreSQL's integer.
TOO_LARGE = ["99999999999999999999", str(2**31)]


def refused(result: Result, expected: str) -> str:
    """Exit code 2, no traceback, and one line of ours on stderr, the last, with ``expected``.

    (Before it may come a log line of a new database's schema, the export's progress label,
    or the mistakes an import lists.)
    """
    no_traceback(result)
    assert result.exit_code == 2, (result.exit_code, result.output)
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("borgerdialog: ")]
    assert result.stderr.splitlines()[-1] == line
    assert expected in line, line
    return line


def succeeded(result: Result) -> str:
    no_traceback(result)
    assert result.exit_code == 0, (result.exit_code, result.output)
    return result.stdout


def run(cli: Cli, *args: str, stdin: bytes | None = None) -> Result:
    """A command in-process with standard input given as bytes (not always UTF-8)."""
    with kept_logging(), deadline():
        return CliRunner().invoke(
            main, list(args), input=stdin, env={"BORGERDIALOG_DATABASE_URL": cli.database_url}
        )


def child_env(cli: Cli) -> dict[str, str]:
    """The environment of a child process on the test's database, with no other settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORGERDIALOG_")}
    return {**env, "BORGERDIALOG_DATABASE_URL": cli.database_url}


def child(
    cli: Cli, *args: str, stdin: bytes = b"", stdout: int | IO[bytes] = subprocess.PIPE
) -> subprocess.CompletedProcess[bytes]:
    """``python -m bot ARGS`` as a child process: the real entry point and standard streams."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cli.folder,
        env=child_env(cli),
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=60,
    )


def imported(cli: Cli, source: str, name: str) -> None:
    path = cli.folder / f"{name}.yaml"
    path.write_text(source, encoding="utf-8")
    succeeded(cli("consultation", "import", str(path)))


# --- 1. Ids that no column can hold ------------------------------------------------------------


@pytest.mark.parametrize("number", TOO_LARGE)
def test_an_id_no_column_can_hold_is_answered_as_missing(cli: Cli, number: str) -> None:
    imported(cli, ideas_source(), "skolevej")  # statement 1 and on, from its seeds
    no_statement = f"'skolevej' has no statement {number}"
    for args in (
        ("ideas", "approve", "skolevej", number),
        ("ideas", "hide", "skolevej", number),
        ("ideas", "decide", "skolevej", number, "accepted"),
        ("ideas", "decide", "skolevej", "1", "merged", "--into", number),
        ("ideas", "volunteers", "skolevej", "--want", number),
        ("ideas", "volunteers", "skolevej", "--stop", number),
    ):
        refused(cli(*args), no_statement)
    refused(cli("plan", "cancel", number), f"there is no post {number}")
    refused(cli("broadcast", "status", number), f"there is no post {number}")
    # The command these follow: it answered so already.
    refused(cli("moderation", "approve", number), f"no moderation item {number}")
    assert "decision" not in succeeded(cli("ideas", "list", "skolevej"))


# --- 2. Screening input that is not UTF-8 ------------------------------------------------------

NOT_UTF8 = "the text is not UTF-8"


@SQLITE_ONLY
@pytest.mark.parametrize(("encoding", "line"), [("latin-1", 2), ("utf-16", 1)])
def test_a_file_to_screen_that_is_not_utf8_is_named(cli: Cli, encoding: str, line: int) -> None:
    path = cli.folder / "kommentarer.txt"
    path.write_bytes("Godt initiativ\nÆblegrød på Ærø\n".encode(encoding))
    expected = f"borgerdialog: {path}: line {line}: {NOT_UTF8}"
    for args in (("screen", str(path)), ("screen", str(path), "--column", "tekst")):
        result = cli(*args)
        refused(result, expected)
        assert result.stdout == ""  # the whole file is read first


@SQLITE_ONLY
def test_standard_input_that_is_not_utf8_is_refused_not_replaced(cli: Cli) -> None:
    latin = "Godt initiativ\nÆblegrød på Ærø\n".encode("latin-1")
    result = run(cli, "screen", stdin=latin)
    # The first line is screened as it comes; the second is refused, not read as "�blegr�d".
    assert "\ufffd" not in result.stdout
    assert '"text": "Godt initiativ"' in result.stdout
    refused(result, f"standard input: line 2: {NOT_UTF8}")


@SQLITE_ONLY
def test_a_json_line_with_a_lone_surrogate_is_unreadable_text(cli: Cli) -> None:
    lines = b'{"text": "Godt initiativ"}\n{"text": "halv \\ud800 tegn"}\n'
    result = run(cli, "screen", stdin=lines)
    refused(result, "line 2: the text holds a broken character (a lone surrogate)")
    # The same rule as bytes that are not UTF-8: the texts before it were screened.
    assert '"text": "Godt initiativ"' in result.stdout


# --- 3 and 7. Passwords ------------------------------------------------------------------------

EMAIL = "anne@kommune.dk"
NOT_UTF8_PASSWORD = b"korrekt\xff\xfehest-batteri\n"


@SQLITE_ONLY
def test_a_password_that_is_not_utf8_is_one_line(cli: Cli) -> None:
    add = ("staff", "add", EMAIL, "--role", "staff", "--password-stdin")
    refused(run(cli, *add, stdin=NOT_UTF8_PASSWORD), "the password is not UTF-8 text")
    # The real process too: its standard input follows the locale, which in-process it does not.
    result = child(cli, *add, stdin=NOT_UTF8_PASSWORD)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.decode() == "borgerdialog: the password is not UTF-8 text; nothing changed\n"
    )
    assert "No accounts yet" in succeeded(cli("staff", "list"))


@SQLITE_ONLY
def test_reset_password_checks_the_account_before_asking(cli: Cli) -> None:
    # Nothing to read: a prompt would end as at Ctrl-D. Not asked at all: no such account.
    missing = run(cli, "staff", "reset-password", EMAIL, stdin=b"")
    refused(missing, f"no account for {EMAIL} (see 'borgerdialog staff list')")
    assert "Password" not in missing.output
    add = ("staff", "add", EMAIL, "--role", "staff", "--password-stdin")
    succeeded(run(cli, *add, stdin=b"korrekt hest batteri\n"))
    # Ctrl-D at the prompt: one line, exit 2, not click's "Aborted!" and exit code 1.
    ended = run(cli, "staff", "reset-password", EMAIL, stdin=b"")
    assert ended.stderr.startswith("Password: ")  # asked this time
    refused(ended, "borgerdialog: no password was given; nothing changed")
    # staff add the same way: a taken address or an unknown role is said before any prompt.
    for address, role, reason in (
        (EMAIL, "staff", f"there is already an account for {EMAIL}"),
        ("ny@kommune.dk", "boss", "unknown role 'boss'"),
    ):
        taken = run(cli, "staff", "add", address, "--role", role, stdin=b"")
        refused(taken, reason)
        assert "Password" not in taken.output


# --- 4. QR codes and bot names -----------------------------------------------------------------


@SQLITE_ONLY
def test_link_refuses_an_unknown_picture_format_and_a_broken_bot_name(cli: Cli) -> None:
    imported(cli, open_now(), "friluftsliv")
    gif = cli.folder / "plakat.gif"
    refused(
        cli("consultation", "link", "friluftsliv", "--qr", str(gif), "--bot", "kommune_bot"),
        f"--qr {gif}: the QR code is written as .png, .svg, .pdf or .eps",
    )
    # The print formats the QR library writes stay open to a poster's maker.
    for suffix in ("pdf", "eps"):
        poster = cli.folder / f"plakat.{suffix}"
        succeeded(
            cli("consultation", "link", "friluftsliv", "--qr", str(poster), "--bot", "kommune_bot")
        )
        assert poster.stat().st_size > 0
    # Too short, not a bot's name, a letter Telegram does not take, a Kelvin sign that a
    # case-insensitive [a-z] would take for a k, too long.
    for name in ("bad name!", "xbot", "kommune", "æble_bot", "\u212aommune_bot", "a" * 30 + "bot"):
        result = cli("consultation", "link", "friluftsliv", "--bot", name)
        # (The terminal sees the Kelvin sign as the K it stands for: NFC.)
        refused(result, "a Telegram bot's username is 5-32 letters a-z, digits and underscores")
        assert result.stdout == ""
    assert not list(cli.folder.glob("friluftsliv-*"))  # no QR code of a broken link
    # Telegram's own rule: any case, an @ before it as people write it.
    for name in ("@kommune_bot", "KommuneBot", "abbot", "a" * 29 + "bot"):
        shown = succeeded(cli("consultation", "link", "friluftsliv", "--bot", name))
        assert f"telegram: https://t.me/{name.lstrip('@')}?start=friluftsliv" in shown


# --- 5. Output that cannot be written ----------------------------------------------------------


@SQLITE_ONLY
def test_output_that_cannot_be_written_is_named_not_blamed_on_the_database(cli: Cli) -> None:
    imported(cli, open_now(), "friluftsliv")
    folder = cli.folder / "ud"
    folder.mkdir()
    refused(cli("export", "friluftsliv", "-o", str(folder)), f"{folder}: cannot be written: Is a")
    refused(
        cli("export", "friluftsliv", "-o", "/dev/full"),
        "/dev/full: cannot be written: No space left on device",
    )
    refused(
        cli("export", "friluftsliv", "--format", "polis", "/dev/full/polis"),
        "/dev/full/polis: cannot be written: Not a directory",
    )
    refused(
        cli("consultation", "link", "friluftsliv", "--qr-dir", "/dev/null"),
        "--qr-dir /dev/null: is not a folder",
    )
    # A full disk as standard output, through the real process.
    with open("/dev/full", "wb") as full:
        shown = child(cli, "consultation", "show", "friluftsliv", stdout=full)
        exported = child(cli, "export", "friluftsliv", "-o", "-", stdout=full)
    for result in (shown, exported):
        assert result.returncode == 2, result.stderr
        assert result.stderr.decode().splitlines()[-1] == (
            "borgerdialog: standard output: cannot be written: No space left on device"
        )


@SQLITE_ONLY
def test_a_closed_pipe_ends_the_command_quietly(cli: Cli) -> None:
    imported(cli, open_now(), "friluftsliv")
    for args in (("consultation", "show", "friluftsliv"), ("export", "friluftsliv", "-o", "-")):
        # As `| head -1` that has already stopped: the reading end is closed before the command
        # writes anything (it takes a second to start).
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=cli.folder,
            env=child_env(cli),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        process.stdout.close()
        _, stderr = process.communicate(timeout=60)
        # Exit code 1 as Python tools (and click) give it; the export's progress label only.
        assert process.returncode == 1, stderr
        assert set(stderr.decode().splitlines()) <= {"Exporting"}, stderr


# --- 6. Plurals --------------------------------------------------------------------------------


@SQLITE_ONLY
def test_one_mistake_is_one_mistake(cli: Cli) -> None:
    one = cli.folder / "one.yaml"
    one.write_text(open_now().replace("citizen_role: co-design", "citizen_role: boss"), "utf-8")
    refused(cli("consultation", "import", str(one)), "borgerdialog: 1 mistake; nothing was")
    imported(cli, open_now(), "friluftsliv")
    sheet = cli.folder / "plan.csv"
    sheet.write_text(
        "id,consultation,when,audience,text_da\n"
        "1,friluftsliv,2020-01-01 10:00,participants,For sent\n",
        encoding="utf-8",
    )
    assert cli("plan", "import", str(sheet)).stderr.splitlines()[-1] == (
        "borgerdialog: 1 mistake; nothing was imported"
    )
    sheet.write_text(
        "id,consultation,when,audience,text_da\n"
        "1,friluftsliv,2020-01-01 10:00,participants,For sent\n"
        "2,friluftsliv,2020-01-02 10:00,participants,Også for sent\n",
        encoding="utf-8",
    )
    assert cli("plan", "import", str(sheet)).stderr.splitlines()[-1] == (
        "borgerdialog: 2 mistakes; nothing was imported"
    )


# --- 8. Mistakes in how a command is called ----------------------------------------------------


@SQLITE_ONLY
def test_a_mistyped_command_or_option_is_one_line_naming_the_help(cli: Cli) -> None:
    assert refused(cli("exprot", "friluftsliv"), "no such command") == (
        "borgerdialog: no such command 'exprot'. Did you mean 'export'? (see 'borgerdialog --help')"
    )
    assert refused(cli("export", "friluftsliv", "--nope", "csv"), "no such option") == (
        "borgerdialog: no such option '--nope' (see 'borgerdialog export --help')"
    )
    assert "Did you mean '--format'?" in refused(cli("export", "x", "--fromat", "csv"), "--fromat")
    line = refused(cli("export", "friluftsliv", "--format", "pdf"), "'pdf' is not one of")
    assert line.endswith("(see 'borgerdialog export --help')"), line
    line = refused(cli("consultation", "show"), "missing argument 'SLUG'")
    assert line.endswith("(see 'borgerdialog consultation show --help')"), line
    for result in (cli("exprot"), cli("consultation", "show")):
        assert "Usage:" not in result.output


@SQLITE_ONLY
def test_a_command_group_alone_shows_what_it_holds(cli: Cli) -> None:
    shown = succeeded(cli("consultation"))
    assert "Commands:" in shown
    assert "import" in shown
    assert "borgerdialog, version" in succeeded(cli("--version"))


@SQLITE_ONLY
def test_an_export_of_no_such_consultation_is_one_line_and_no_progress(cli: Cli) -> None:
    result = cli("export", "nope")
    refused(result, "no consultation 'nope'")
    assert "Exporting" not in result.stderr
    imported(cli, open_now(), "friluftsliv")
    exported = cli("export", "friluftsliv", "-o", str(cli.folder / "out.csv"))
    succeeded(exported)
    assert "Exporting" in exported.stderr
