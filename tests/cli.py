"""The ``borgerdialog`` command line in tests: as a child process (the real entry point, exit codes,
what the interpreter prints) or in-process through click's CliRunner (the same command functions,
without two seconds of interpreter start-up per call).

``borgerdialog`` and ``in_process`` take the same arguments and give the same answer: the exit
code, stdout and stderr, with only the given ``BORGERDIALOG_*`` variables set and ``cwd`` as the
working folder (where ``.env`` and the default SQLite file are looked for). A command that fails
with an unexpected exception in-process gets the traceback appended to its stderr and exit code 1,
as the interpreter would print it, so "no traceback" assertions mean the same in both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from bot.cli import main

# A command still running after this long is stopped (an endless loop, a read from /dev/zero).
LIMIT_SECONDS = 60


def borgerdialog(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` in a child process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BORGERDIALOG_")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def in_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The same command, run in this process by click's CliRunner (not from a running loop:
    the commands run their own; from async code call it through ``asyncio.to_thread``)."""
    # Unset every BORGERDIALOG_* variable of this process (CI's own among them) for the call.
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BORGERDIALOG_")}
    with contextlib.chdir(cwd), kept_logging(), deadline():
        result = CliRunner().invoke(main, list(args), input=stdin, env={**unset, **(env or {})})
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
        code = 1
    return subprocess.CompletedProcess(
        ["borgerdialog", *args], code, stdout=result.stdout, stderr=stderr
    )


class Overran(BaseException):
    """A command still running after the limit (a BaseException: no handler may swallow it)."""


@contextmanager
def deadline(seconds: int = LIMIT_SECONDS) -> Iterator[None]:
    """Stop the command with Overran after ``seconds`` (only in the main thread: signals)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise Overran(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def kept_logging() -> Iterator[None]:
    """The commands point the root logger at their (captured, then closed) stderr: put it back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@dataclass
class Cli:
    """The command line, run in-process against one database (the ``cli`` fixture)."""

    database_url: str
    folder: Path

    def __call__(self, *args: str) -> Result:
        with deadline():
            return CliRunner().invoke(
                main, list(args), env={"BORGERDIALOG_DATABASE_URL": self.database_url}
            )


def no_traceback(result: Result) -> None:
    """The command ended by itself (an exit code), never by an exception it did not handle."""
    unexpected = None if isinstance(result.exception, SystemExit) else result.exception
    assert unexpected is None, "".join(traceback.format_exception(unexpected))
    assert "Traceback" not in result.output
