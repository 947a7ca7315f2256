"""Logs never show the bot token (tracebacks included) nor, by default, the database's chatter."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator

import pytest

from bot.cli.common import RedactingFormatter, configure_logging
from bot.config import Settings

TOKEN = "123456789:AAFakeTokenForTheLogTest_abcdefghijk"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("sqlalchemy", "asyncpg")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def test_a_traceback_holding_the_token_is_redacted() -> None:
    formatter = RedactingFormatter("%(levelname)s %(message)s", [TOKEN])
    try:
        raise ConnectionError(f"POST https://api.telegram.org/bot{TOKEN}/getUpdates failed")
    except ConnectionError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "request failed", (), None)
        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert "Traceback" in text
    assert TOKEN not in text
    assert "bot[redacted]/getUpdates" in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("restored_logging")
def test_database_drivers_stay_quiet_at_debug_unless_asked(
    make_settings: Callable[..., Settings],
) -> None:
    configure_logging(make_settings(log_level="DEBUG", telegram_token=TOKEN))
    assert logging.getLogger("sqlalchemy.engine.Engine").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("asyncpg").getEffectiveLevel() == logging.WARNING
    configure_logging(make_settings(log_level="DEBUG", log_database=True))
    assert logging.getLogger("sqlalchemy.engine.Engine").getEffectiveLevel() == logging.DEBUG


def test_a_web_event_is_logged_without_the_participants_id() -> None:
    from bot.dialogue.core import loggable

    assert loggable("w-nS-EfRpdTIVSiwODGij_sHAl:c12") == "c12"
    assert loggable("40112") == "40112"  # a Telegram update id names no one


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("restored_logging")
def test_a_malformed_request_is_one_warning_without_what_it_carried(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    """aiohttp reports a request that is not valid HTTP with a traceback quoting the raw header:
    a session cookie sent by anyone would land in the log."""
    from aiohttp.http_exceptions import InvalidHeader

    configure_logging(make_settings(telegram_token=TOKEN))
    cookie = "bd_admin=SESSIONTOKEN\x01"
    try:
        raise InvalidHeader(cookie.encode())
    except InvalidHeader as error:
        logging.getLogger("aiohttp.server").error(
            "Error handling request from %s", "203.0.113.9", exc_info=error
        )
    written = capsys.readouterr().err
    assert written.strip().endswith(
        "WARNING aiohttp.server: refused a request that is not valid HTTP (InvalidHeader)"
    )
    assert len(written.strip().splitlines()) == 1
    assert "SESSIONTOKEN" not in written
    assert "203.0.113.9" not in written
