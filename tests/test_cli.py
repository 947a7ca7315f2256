"""The command line as an operator meets it: help, bad settings, migrate, refusals.

Help, a malformed and a refused token, migrate and a taken port run as a child process (the real
entry point, its exit codes and what the interpreter prints); the rest in-process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.migrate import head_revision
from tests.cli import borgerdialog, in_process
from tests.fake_telegram import FakeTelegram
from tests.postgres import free_port


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = borgerdialog("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "migrate"):
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("BORGERDIALOG_HTTP_PORT", "abc", "BORGERDIALOG_HTTP_PORT: Input should be a valid"),
        ("BORGERDIALOG_HTTP_PORT", "70000", "BORGERDIALOG_HTTP_PORT: Input should be less than"),
        ("BORGERDIALOG_TIMEZONE", "Europe/Aarhus", "BORGERDIALOG_TIMEZONE: is not a known time"),
        ("BORGERDIALOG_DEFAULT_LANGUAGE", "de", "BORGERDIALOG_DEFAULT_LANGUAGE: must be one of"),
        ("BORGERDIALOG_DATABASE_URL", "mysql://x", "BORGERDIALOG_DATABASE_URL: must start with"),
        ("BORGERDIALOG_STAFF_CHAT_ID", "staff", "BORGERDIALOG_STAFF_CHAT_ID: Input should be"),
        ("BORGERDIALOG_TELEGRAM_API_URL", "localhost:8081", "BORGERDIALOG_TELEGRAM_API_URL: must"),
    ],
)
def test_a_bad_setting_gives_one_clear_line_and_exit_code_2(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    result = in_process("run", cwd=tmp_path, env={variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"borgerdialog: {expected}")
    assert "Traceback" not in result.stderr + result.stdout


def test_a_malformed_token_is_named_but_never_shown(tmp_path: Path) -> None:
    secret = "not-a-token-SECRETVALUE"
    result = borgerdialog("run", cwd=tmp_path, env={"BORGERDIALOG_TELEGRAM_TOKEN": secret})
    assert result.returncode == 2
    assert "BORGERDIALOG_TELEGRAM_TOKEN" in result.stderr
    assert "SECRETVALUE" not in result.stderr + result.stdout


def test_a_refused_token_is_one_line_exit_2_and_never_shown(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    token = "123456:UnknownToThisServerSECRET"
    result = borgerdialog(
        "run",
        cwd=tmp_path,
        env={
            "BORGERDIALOG_TELEGRAM_TOKEN": token,
            "BORGERDIALOG_TELEGRAM_API_URL": fake_telegram.api_url,
            "BORGERDIALOG_HTTP_PORT": str(free_port()),
        },
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "borgerdialog: BORGERDIALOG_TELEGRAM_TOKEN: Telegram refused this token "
        "(check it with @BotFather)"
    )
    assert "SECRET" not in result.stderr + result.stdout


def test_settings_can_come_from_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BORGERDIALOG_HTTP_PORT=notaport\n")
    result = in_process("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "BORGERDIALOG_HTTP_PORT" in result.stderr


def test_migrate_is_idempotent_on_the_default_sqlite(tmp_path: Path) -> None:
    first = borgerdialog("migrate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"Migrated the database schema from empty to {head_revision()}."
    assert (tmp_path / "data" / "borgerdialog.sqlite3").exists()
    second = in_process("migrate", cwd=tmp_path)
    assert second.stdout.strip() == (
        f"The database schema is up to date (revision {head_revision()})."
    )


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://nobody:secretpw@127.0.0.1:{free_port()}/nothing"
    result = in_process("migrate", cwd=tmp_path, env={"BORGERDIALOG_DATABASE_URL": url})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("borgerdialog: cannot reach the database postgresql+asyncpg://")
    assert "secretpw" not in result.stderr


def test_a_mistyped_setting_stops_the_program_naming_what_it_may_mean(tmp_path: Path) -> None:
    """BORGERDIALOG_WEB_PORT was ignored: the bot started on the default port. A variable with
    the settings' prefix that is no setting stops it, as a bad value of a setting does."""
    result = in_process(
        "consultation",
        "list",
        cwd=tmp_path,
        env={"BORGERDIALOG_WEB_PORT": "8190", "BORGERDIALOG_TELEGRAM_TOKN": "x"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "borgerdialog: BORGERDIALOG_TELEGRAM_TOKN: no such setting (did you mean "
        "BORGERDIALOG_TELEGRAM_TOKEN?)",
        "borgerdialog: BORGERDIALOG_WEB_PORT: no such setting (did you mean "
        "BORGERDIALOG_HTTP_PORT or BORGERDIALOG_SMTP_PORT?)",
    ]
    # The test suite's own variables are not the program's settings.
    quiet = in_process(
        "consultation", "list", cwd=tmp_path, env={"BORGERDIALOG_TEST_REQUIRE_BROWSER": "1"}
    )
    assert quiet.returncode == 0, quiet.stderr


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = borgerdialog("run", cwd=tmp_path, env={"BORGERDIALOG_HTTP_PORT": str(port)})
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"borgerdialog: cannot listen on 127.0.0.1:{port}: the address is in use")
    )


def test_a_command_that_makes_a_new_database_says_where(tmp_path: Path) -> None:
    """The data folder is relative to where a command runs: run in the wrong folder, a command
    would list no consultations (or add a staff account) in a new, empty database of its own.
    It says where it makes one; the next command there, finding it, says nothing."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = in_process("consultation", "list", cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    made = (elsewhere / "data" / "borgerdialog.sqlite3").resolve()
    assert f"Note: no database was at {made}; a new, empty one is made there." in first.stderr
    again = in_process("consultation", "list", cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert "no database was at" not in again.stderr
