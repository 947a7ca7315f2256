"""Settings: read once from BORGERDIALOG_* environment variables (and an optional .env file)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from bot.dialogue.i18n.languages import DEFAULT_LANGUAGE_CANDIDATES
from handlers.common import SUPPORTED_LANGUAGES
from handlers.email import is_email_address

ENV_PREFIX = "BORGERDIALOG_"
TELEGRAM_API_URL = "https://api.telegram.org/bot"
# Meta's Graph API, at the version the WhatsApp channel was written and tested against: a
# pinned version keeps its answers' shapes from changing under the bot (Meta keeps each version
# for about two years; move it on deliberately).
GRAPH_API_URL = "https://graph.facebook.com/v23.0"
WHATSAPP_API_URL = GRAPH_API_URL
# Messenger is the same Graph API: the same pinned version, moved on together.
MESSENGER_API_URL = GRAPH_API_URL
# A WhatsApp Cloud API phone number id, and a business number as wa.me links take it.
_DIGITS = re.compile(r"[0-9]{5,20}")
_PHONE = re.compile(r"[1-9][0-9]{6,14}")
# A Facebook page as m.me links take it: its numeric id, or its username (letters, digits, dots).
_PAGE = re.compile(r"[A-Za-z0-9.]{5,50}")

_DRIVER_ALIASES = {
    "postgres://": "postgresql+asyncpg://",
    "postgresql://": "postgresql+asyncpg://",
    "sqlite://": "sqlite+aiosqlite://",
}
_SUPPORTED_DRIVERS = ("sqlite+aiosqlite://", "postgresql+asyncpg://")

Port = Annotated[int, Field(ge=1, le=65535)]
# What Telegram accepts as a webhook's secret_token (setWebhook).
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Hosts a webhook may be reached at over plain http: this machine (tests, a proxy beside the bot).
_LOCAL_HOSTS = ("127.0.0.1", "localhost")


class SettingsError(Exception):
    """Raised with one human-readable line per bad environment variable."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Settings(BaseSettings):
    """Everything the application can be configured with; validated at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    telegram_token: SecretStr | None = None
    telegram_api_url: str = TELEGRAM_API_URL
    # Where Telegram delivers updates (webhook mode); without it the bot long-polls.
    telegram_webhook_url: str = ""
    # Sent by Telegram with every delivery, so the bot can tell a forged one.
    telegram_webhook_secret: SecretStr | None = None
    data_dir: Path = Path("data")
    database_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    staff_chat_id: int | None = None
    moderator_chat_id: int | None = None
    timezone: str = "Europe/Copenhagen"
    default_language: str = "da"
    # Signs the web chat's participant cookie; generated into the data folder when unset.
    web_secret: SecretStr | None = None
    # The secret used before a rotation: its cookies stay valid until re-signed on a page load.
    web_previous_secret: SecretStr | None = None
    # Behind a reverse proxy that sets X-Forwarded-For: the web chat's per-address limits then
    # count the address the proxy saw (never trust that header from anyone else).
    trusted_proxy: bool = False
    # The address citizens reach the web server at (for links and the WebSocket origin check).
    public_url: str = ""
    # Other sites that may embed the web chat, comma-separated (https://www.kommune.dk).
    web_allowed_origins: str = ""
    organisation_name: str = ""
    privacy_contact: str = ""
    log_level: str = "INFO"
    # The database drivers log every statement with its parameters (citizens' texts, ids) at
    # DEBUG; they stay at WARNING unless an operator asks for them here.
    log_database: bool = False
    max_concurrent_updates: Annotated[int, Field(ge=1, le=4096)] = 256
    telegram_connections: Annotated[int, Field(ge=1, le=4096)] = 256
    polling_timeout: Annotated[int, Field(ge=0, le=50)] = 30
    inbox_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # Days after a consultation closes before staff are asked to delete it (GDPR storage
    # limitation: what citizens gave it is kept only while its purpose needs it).
    delete_reminder_days: Annotated[int, Field(ge=1, le=3650)] = 180
    # A folder of word lists that extend the shipped screening lists (same file names).
    screening_dir: Path | None = None
    # The languages citizens' texts are read as, "code:weight" comma-separated (see README).
    language_candidates: str = DEFAULT_LANGUAGE_CANDIDATES
    # Items waiting longer than this get a digest in the moderator chat.
    moderation_digest_minutes: Annotated[int, Field(ge=1, le=10080)] = 60
    # How often opinion groups are recomputed from new votes (only when there are new votes).
    opinion_groups_minutes: Annotated[int, Field(ge=1, le=1440)] = 5
    # The municipality's public Telegram channel (or group): where "channel" posts go.
    public_channel_id: int | None = None
    # How often the content plan is checked for due posts.
    plan_check_seconds: Annotated[int, Field(ge=1, le=300)] = 10
    # A post missed while the bot was down still goes out this long after its time (reported
    # as late); later than that it is skipped and reported, never sent by surprise days later.
    late_window_minutes: Annotated[int, Field(ge=0, le=10080)] = 60
    # Bulk sending: Telegram allows about 30 messages a second to chats that did not just
    # write; more needs paid broadcast (Telegram Stars), up to 1000 a second.
    bulk_messages_per_second: Annotated[float, Field(gt=0, le=1000)] = 29.0
    paid_broadcast: bool = False
    group_messages_per_minute: Annotated[int, Field(ge=1, le=20)] = 20
    # How long a sender holds the bulk messages it took; after a crash they are sent again
    # once this runs out.
    bulk_lease_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    # E-mail for web citizens who ask to hear back; without a host nobody is offered it.
    smtp_host: str = ""
    smtp_port: Port = 587
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    # The sender, "address" or "Name <address>".
    smtp_from: str = ""
    smtp_starttls: bool = True
    # WhatsApp Cloud API (Meta): off unless the token, phone number id, app secret and verify
    # token are all set. The number is the business number citizens write to, for wa.me links.
    whatsapp_token: SecretStr | None = None
    whatsapp_phone_number_id: str = ""
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_api_url: str = WHATSAPP_API_URL
    whatsapp_number: str = ""
    # Facebook Messenger (Meta): off unless the page access token, app secret and verify token
    # are all set. The page (its id or username) is the page citizens write to, for m.me links.
    messenger_page_token: SecretStr | None = None
    messenger_app_secret: SecretStr | None = None
    messenger_verify_token: SecretStr | None = None
    messenger_api_url: str = MESSENGER_API_URL
    messenger_page_id: str = ""

    @field_validator("telegram_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("telegram_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram tokens look like "123456789:AA…"; checking the shape catches a pasted chat id
        # or a quoted value early, without ever echoing the token itself.
        if value is None:
            return None
        bot_id, sep, secret = value.get_secret_value().partition(":")
        if not (sep and bot_id.isdigit() and len(secret) >= 10):
            raise ValueError("is not a Telegram bot token (expected digits, a colon, then a key)")
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        parts = urlsplit(value)
        local = parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS
        if not (parts.scheme == "https" or local) or not parts.hostname:
            raise ValueError(
                "must be an https:// address (http:// only for 127.0.0.1 or localhost)"
            )
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1 to 256 of the characters A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator(
        "smtp_password",
        "telegram_webhook_secret",
        "whatsapp_token",
        "whatsapp_app_secret",
        "whatsapp_verify_token",
        "messenger_page_token",
        "messenger_app_secret",
        "messenger_verify_token",
        mode="before",
    )
    @classmethod
    def _empty_secret_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value:
            return None
        return value

    @field_validator("smtp_host", "smtp_username")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()

    @field_validator("smtp_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        value = value.strip()
        if value and not is_email_address(parseaddr(value)[1]):
            raise ValueError("is not an e-mail address (e.g. borgerdialog@kommune.dk)")
        return value

    @field_validator("whatsapp_phone_number_id")
    @classmethod
    def _phone_number_id(cls, value: str) -> str:
        value = value.strip()
        if value and not _DIGITS.fullmatch(value):
            raise ValueError(
                "is not a WhatsApp phone number id (digits only, from WhatsApp > API Setup; "
                "not the phone number itself)"
            )
        return value

    @field_validator("whatsapp_number")
    @classmethod
    def _business_number(cls, value: str) -> str:
        value = value.strip()
        if value and not _PHONE.fullmatch(value):
            raise ValueError(
                "must be the business phone number in digits with the country code, without + "
                "or spaces (e.g. 4512345678)"
            )
        return value

    @field_validator("messenger_page_id")
    @classmethod
    def _page(cls, value: str) -> str:
        value = value.strip().removeprefix("@")
        if value and not _PAGE.fullmatch(value):
            raise ValueError(
                "must be the Facebook page's id (digits) or username (as in "
                "facebook.com/<username>), without https://"
            )
        return value

    @field_validator(
        "whatsapp_token",
        "whatsapp_app_secret",
        "whatsapp_verify_token",
        "messenger_page_token",
        "messenger_app_secret",
        "messenger_verify_token",
    )
    @classmethod
    def _printable_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # A quoted or multi-line paste is the usual mistake; the value itself is never echoed.
        if value is not None:
            text = value.get_secret_value()
            if text != text.strip() or not text.isprintable() or len(text) > 1024:
                raise ValueError("must be one line of printable characters, without spaces around")
        return value

    @field_validator("telegram_api_url", "whatsapp_api_url", "messenger_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value:
            return value
        for alias, driver in _DRIVER_ALIASES.items():
            if value.startswith(alias):
                value = driver + value[len(alias) :]
        if not value.startswith(_SUPPORTED_DRIVERS):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a known time zone (e.g. Europe/Copenhagen)") from None
        return value

    @field_validator("default_language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in SUPPORTED_LANGUAGES:
            raise ValueError(f"must be one of: {', '.join(SUPPORTED_LANGUAGES)}")
        return value

    @field_validator("language_candidates")
    @classmethod
    def _language_candidates(cls, value: str) -> str:
        from bot.dialogue.i18n.languages import parse_candidates

        parse_candidates(value)  # raises ValueError with what is wrong
        return value

    @field_validator("screening_dir")
    @classmethod
    def _screening_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError("is not a folder (it should hold word lists such as offensive.txt)")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _bulk_rate(self) -> Settings:
        if self.bulk_messages_per_second > 30 and not self.paid_broadcast:
            raise ValueError(
                "BORGERDIALOG_BULK_MESSAGES_PER_SECOND above 30 needs "
                "BORGERDIALOG_PAID_BROADCAST=true (Telegram's paid broadcast)"
            )
        return self

    @model_validator(mode="after")
    def _webhook(self) -> Settings:
        if not self.telegram_webhook_url:
            return self
        if self.telegram_webhook_secret is None:
            raise ValueError(
                "BORGERDIALOG_TELEGRAM_WEBHOOK_SECRET: needed with "
                "BORGERDIALOG_TELEGRAM_WEBHOOK_URL (1 to 256 of A-Z, a-z, 0-9, _ and -)"
            )
        if self.telegram_token is None:
            raise ValueError(
                "BORGERDIALOG_TELEGRAM_WEBHOOK_URL: needs BORGERDIALOG_TELEGRAM_TOKEN "
                "(a webhook is where Telegram sends that bot's updates)"
            )
        return self

    @model_validator(mode="after")
    def _smtp(self) -> Settings:
        if not self.smtp_host:
            if self.smtp_from or self.smtp_username or self.smtp_password:
                raise ValueError(
                    "BORGERDIALOG_SMTP_HOST: needed when other BORGERDIALOG_SMTP_ settings are set"
                )
            return self
        if not self.smtp_from:
            raise ValueError(
                "BORGERDIALOG_SMTP_FROM: needed with BORGERDIALOG_SMTP_HOST (the sender address)"
            )
        if bool(self.smtp_username) != (self.smtp_password is not None):
            raise ValueError(
                "BORGERDIALOG_SMTP_USERNAME and BORGERDIALOG_SMTP_PASSWORD: set both or neither"
            )
        # A password sent in the clear can be read by anyone on the way.
        local = self.smtp_host in ("localhost", "127.0.0.1", "::1")
        if self.smtp_password is not None and not self.smtp_starttls and not local:
            raise ValueError(
                "BORGERDIALOG_SMTP_STARTTLS: must be true when a password is sent to "
                "a server on another host"
            )
        return self

    @model_validator(mode="after")
    def _whatsapp(self) -> Settings:
        _all_or_nothing(
            "WHATSAPP",
            {
                "TOKEN": self.whatsapp_token is not None,
                "PHONE_NUMBER_ID": bool(self.whatsapp_phone_number_id),
                "APP_SECRET": self.whatsapp_app_secret is not None,
                "VERIFY_TOKEN": self.whatsapp_verify_token is not None,
            },
            ("NUMBER", bool(self.whatsapp_number)),
            "token, phone number id, app secret and verify token",
        )
        return self

    @model_validator(mode="after")
    def _messenger(self) -> Settings:
        _all_or_nothing(
            "MESSENGER",
            {
                "PAGE_TOKEN": self.messenger_page_token is not None,
                "APP_SECRET": self.messenger_app_secret is not None,
                "VERIFY_TOKEN": self.messenger_verify_token is not None,
            },
            ("PAGE_ID", bool(self.messenger_page_id)),
            "page token, app secret and verify token",
        )
        return self

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            path = (self.data_dir / "borgerdialog.sqlite3").resolve()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{path}")
        return self

    @property
    def telegram_enabled(self) -> bool:
        """Whether a bot token is configured."""
        return self.telegram_token is not None

    @property
    def telegram_webhook(self) -> bool:
        """Whether Telegram delivers updates to the web server instead of being long-polled."""
        return self.telegram_enabled and bool(self.telegram_webhook_url)

    @property
    def whatsapp_enabled(self) -> bool:
        """Whether the WhatsApp Cloud API channel is configured."""
        return self.whatsapp_token is not None and bool(self.whatsapp_phone_number_id)

    @property
    def messenger_enabled(self) -> bool:
        """Whether the Messenger channel is configured."""
        return self.messenger_page_token is not None

    @property
    def email_enabled(self) -> bool:
        """Whether an SMTP server is configured, so citizens can hear back by e-mail."""
        return bool(self.smtp_host)

    @property
    def public_base_url(self) -> str:
        """Where citizens reach the web server."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @property
    def allowed_origins(self) -> set[str]:
        """Origins that may open the web chat's WebSocket."""
        extra = {o.strip().rstrip("/") for o in self.web_allowed_origins.split(",") if o.strip()}
        base = self.public_base_url
        local = {
            base,
            base.replace("127.0.0.1", "localhost"),
            base.replace("localhost", "127.0.0.1"),
        }
        return extra | local

    @property
    def language_priors(self) -> dict[str, float]:
        """The candidate languages with their priors, summing to 1."""
        from bot.dialogue.i18n.languages import parse_candidates

        return parse_candidates(self.language_candidates)

    @property
    def zone(self) -> ZoneInfo:
        """The time zone citizens and staff see times in."""
        return ZoneInfo(self.timezone)


def _all_or_nothing(
    channel: str, parts: dict[str, bool], optional: tuple[str, bool], needs: str
) -> None:
    """A channel's settings: every needed one or none, and the optional one only with them."""
    prefix = f"{ENV_PREFIX}{channel}_"
    name = channel.capitalize() if channel != "WHATSAPP" else "WhatsApp"
    missing = [prefix + part for part, given in parts.items() if not given]
    if missing and len(missing) < len(parts):
        raise ValueError(
            f"{missing[0]}: needed with the other {prefix} settings (the channel needs {needs})"
        )
    if optional[1] and missing:
        raise ValueError(
            f"{prefix}{optional[0]}: set only with the {name} channel configured ({needs})"
        )


def _describe(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        # A rule across several settings names them itself.
        return message
    name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
    shown = error.get("input")
    secret = any(word in name.lower() for word in ("token", "password", "secret"))
    if isinstance(shown, str) and not secret and error["type"] != "missing":
        return f"{name}: {message} (got {shown!r})"
    return f"{name}: {message}"


# Variables with the settings' prefix that are no setting: the test suite's own.
NOT_SETTINGS = ("BORGERDIALOG_TEST_", "BORGERDIALOG_SCREENSHOTS")


def unknown_variables(environment: Mapping[str, str]) -> list[str]:
    """A line for each BORGERDIALOG_ variable that is no setting, with the one it may mean:
    a mistyped name would otherwise be ignored and its default used (another port, no token)."""
    # Compared without the prefix all share.
    names = sorted(name.upper() for name in Settings.model_fields)
    lines = []
    for name in sorted(environment):
        short = name.removeprefix(ENV_PREFIX)
        if short == name or short in names or name.startswith(NOT_SETTINGS):
            continue
        # The settings with the same last word (WEB_PORT: HTTP_PORT or SMTP_PORT, not
        # WEB_SECRET), else the nearest spelling.
        ending = [n for n in names if n.rsplit("_", 1)[-1] == short.rsplit("_", 1)[-1]]
        close = ending[:3] or difflib.get_close_matches(short, names, n=1)
        choices = " or ".join(ENV_PREFIX + n for n in close)
        hint = f" (did you mean {choices}?)" if close else " (see the README's Settings)"
        lines.append(f"{name}: no such setting{hint}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise SettingsError naming each bad variable."""
    # The environment as the settings library reads it (the project reads it nowhere else).
    environment = EnvSettingsSource(Settings, case_sensitive=True).env_vars
    unknown = unknown_variables({name: str(value) for name, value in environment.items()})
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(unknown + [_describe(err) for err in exc.errors()]) from None
    if unknown:
        raise SettingsError(unknown)
    return settings
