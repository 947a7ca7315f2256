"""The bot as an operator runs it, in a child process; and the five-message script citizens send
in the burst tests (each citizen in a rotation of its own, so chats differ in order)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.config import Settings
from tests.conftest import eventually

# What each citizen sends, and a phrase that identifies the Danish reply to it.
SCRIPT = [
    ("/start", "Hej og velkommen"),
    ("/help", "Det kan du her"),
    ("/privacy", "Sådan passer vi"),
    ("Hvornår åbner biblioteket?", "Tak for din besked"),
    ("/language", "Vælg det sprog"),
]


def citizen_script(citizen: int) -> list[tuple[str, str]]:
    """Each citizen sends the five messages in its own rotation, so chats differ in order."""
    shift = citizen % len(SCRIPT)
    return SCRIPT[shift:] + SCRIPT[:shift]


def reply_kind(text: str) -> str:
    for _message, phrase in SCRIPT:
        if text.startswith(phrase):
            return phrase
    raise AssertionError(f"unexpected reply {text[:40]!r}")


class BotProcess:
    """``python -m bot run`` in a child process, as an operator would start it."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        assert (
            settings.telegram_token is not None
            or settings.whatsapp_enabled
            or settings.messenger_enabled
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BORGERDIALOG_")},
            "BORGERDIALOG_DATABASE_URL": settings.database_url,
            "BORGERDIALOG_HTTP_PORT": str(settings.http_port),
            "BORGERDIALOG_POLLING_TIMEOUT": "1",
            "BORGERDIALOG_LOG_LEVEL": "WARNING",
        }
        # The channels the bot runs, each reported "running" by /healthz once it is ready.
        self.channels: list[str] = []
        if settings.telegram_token is not None:
            self.channels.append("telegram")
            self.env["BORGERDIALOG_TELEGRAM_TOKEN"] = settings.telegram_token.get_secret_value()
            self.env["BORGERDIALOG_TELEGRAM_API_URL"] = settings.telegram_api_url
        if settings.whatsapp_enabled:
            assert settings.whatsapp_token is not None
            assert settings.whatsapp_app_secret is not None
            assert settings.whatsapp_verify_token is not None
            self.channels.append("whatsapp")
            self.env |= {
                "BORGERDIALOG_WHATSAPP_TOKEN": settings.whatsapp_token.get_secret_value(),
                "BORGERDIALOG_WHATSAPP_PHONE_NUMBER_ID": settings.whatsapp_phone_number_id,
                "BORGERDIALOG_WHATSAPP_APP_SECRET": settings.whatsapp_app_secret.get_secret_value(),
                "BORGERDIALOG_WHATSAPP_VERIFY_TOKEN": (
                    settings.whatsapp_verify_token.get_secret_value()
                ),
                "BORGERDIALOG_WHATSAPP_API_URL": settings.whatsapp_api_url,
            }
            if settings.whatsapp_number:
                self.env["BORGERDIALOG_WHATSAPP_NUMBER"] = settings.whatsapp_number
        if settings.messenger_enabled:
            assert settings.messenger_page_token is not None
            assert settings.messenger_app_secret is not None
            assert settings.messenger_verify_token is not None
            self.channels.append("messenger")
            self.env |= {
                "BORGERDIALOG_MESSENGER_PAGE_TOKEN": (
                    settings.messenger_page_token.get_secret_value()
                ),
                "BORGERDIALOG_MESSENGER_APP_SECRET": (
                    settings.messenger_app_secret.get_secret_value()
                ),
                "BORGERDIALOG_MESSENGER_VERIFY_TOKEN": (
                    settings.messenger_verify_token.get_secret_value()
                ),
                "BORGERDIALOG_MESSENGER_API_URL": settings.messenger_api_url,
            }
            if settings.messenger_page_id:
                self.env["BORGERDIALOG_MESSENGER_PAGE_ID"] = settings.messenger_page_id
        if settings.telegram_webhook:
            assert settings.telegram_webhook_secret is not None
            self.env["BORGERDIALOG_TELEGRAM_WEBHOOK_URL"] = settings.telegram_webhook_url
            secret = settings.telegram_webhook_secret.get_secret_value()
            self.env["BORGERDIALOG_TELEGRAM_WEBHOOK_SECRET"] = secret
        self.workdir = workdir
        self.port = settings.http_port
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.workdir / f"bot-{self.runs}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def wait_healthy(self) -> None:
        async def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the bot exited early:\n{self.logs()}")
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{self.port}/healthz") as response,
                ):
                    report = await response.json()
                    return response.status == 200 and all(
                        report["channels"].get(channel) == "running" for channel in self.channels
                    )
            except aiohttp.ClientError:
                return False

        await eventually(healthy, timeout=30, what="the bot to report healthy")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-3000:]
            for path in sorted(self.workdir.glob("bot-*.log"))
        )
