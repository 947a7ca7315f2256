"""The example content plan imports next to the example consultation; links for every channel.

The command line runs in-process (click's CliRunner), as in tests/test_hostile_files.py.
"""

from __future__ import annotations

import io
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import segno
from PIL import Image

from tests.cli import Cli, no_traceback
from tests.postgres import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHANNEL_ID = "-1001234567890"


def example_open_soon(folder: Path) -> Path:
    """The example consultation with its round and ideas phase moved ahead of today."""
    zone = ZoneInfo("Europe/Copenhagen")
    now = datetime.now(UTC)
    opens = (now + timedelta(days=1)).astimezone(zone).strftime("%Y-%m-%d 09:00")
    closes = (now + timedelta(days=60)).astimezone(zone).strftime("%Y-%m-%d 23:59")
    source = (EXAMPLES / "friluftsliv.yaml").read_text(encoding="utf-8")
    source = source.replace("opens: 2026-11-01 09:00", f"opens: {opens}")
    path = folder / "friluftsliv.yaml"
    path.write_text(source.replace("closes: 2027-01-31 23:59", f"closes: {closes}"), "utf-8")
    return path


@pytest.mark.parametrize("sheet", ["plan.csv", "plan.xlsx"])
def test_the_example_plan_imports_and_says_which_row_became_which_post(
    cli: Cli, sheet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BORGERDIALOG_PUBLIC_CHANNEL_ID", CHANNEL_ID)
    no_traceback(cli("consultation", "import", str(example_open_soon(cli.folder))))
    shutil.copy(EXAMPLES / sheet, cli.folder / sheet)
    result = cli("plan", "import", sheet)
    no_traceback(result)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("row ")]
    found = [
        re.match(r"row (\d+) → post #(\d+) \(planned (\d{4}-\d\d-\d\d \d\d:\d\d)\), added: ", line)
        for line in lines
    ]
    assert all(found), lines
    assert [int(m[1]) for m in found if m] == [2, 3, 4, 5, 6]
    assert "Imported 5 post(s) from " + sheet in result.stdout
    listing = cli("plan", "list").stdout
    for match in found:
        assert match is not None
        (listed,) = [line for line in listing.splitlines() if line.startswith(f"#{match[2]} ")]
        assert f"planned   {match[3]}" in listed
    assert "to segment:district=north" in listing
    assert "Halvvejs i friluftsdialogen" in listing


def test_a_channel_post_without_a_public_channel_is_refused_with_row_and_column(
    cli: Cli,
) -> None:
    no_traceback(cli("consultation", "import", str(example_open_soon(cli.folder))))
    shutil.copy(EXAMPLES / "plan.csv", cli.folder / "plan.csv")
    result = cli("plan", "import", "plan.csv")
    no_traceback(result)
    assert result.exit_code == 2
    refusal = (
        "'channel' needs the bot to have a public channel, which it does not have yet (whoever "
        "runs the bot sets BORGERDIALOG_PUBLIC_CHANNEL_ID). Choose another audience until then"
    )
    assert result.stderr.splitlines() == [
        f"borgerdialog: plan.csv: row {row}, column E (målgruppe): {refusal}" for row in (2, 5, 6)
    ] + ["borgerdialog: 3 mistakes; nothing was imported"]
    assert "Halvvejs" not in cli("plan", "list", "--all").stdout


# --- Links and QR codes for every channel -------------------------------------------------------

PUBLIC_URL = "https://dialog.kommune.example"
WEB_LINK = f"{PUBLIC_URL}/chat?c=friluftsliv"
TELEGRAM_LINK = "https://t.me/kommune_bot?start=friluftsliv"


def assert_png_holds(path: Path, link: str) -> None:
    """The PNG is poster-size and its modules are segno's matrix of the link, module by module."""
    expected = segno.make(link, error="m").matrix
    with Image.open(path) as image:
        pixels = image.convert("L")
        assert pixels.width >= 1000
        assert pixels.width == pixels.height
        modules = len(expected) + 8  # the quiet zone: four modules each side
        size = pixels.width / modules
        read = [
            [pixels.getpixel((int((4 + x + 0.5) * size), int((4 + y + 0.5) * size))) < 128
             for x in range(len(expected))]
            for y in range(len(expected))
        ]  # fmt: skip
    assert read == [[bool(module) for module in row] for row in expected]


def assert_svg_holds(path: Path, link: str) -> None:
    """The SVG is the vector code segno draws for the link, at the size the file says."""
    svg = path.read_bytes()
    match = re.search(rb'<svg[^>]* width="(\d+)"', svg)
    assert match is not None
    width = int(match[1])
    code = segno.make(link, error="m")
    scale = width // code.symbol_size(scale=1, border=4)[0]
    buffer = io.BytesIO()
    code.save(buffer, kind="svg", scale=scale, border=4)
    assert buffer.getvalue() == svg
    assert width >= 100


def test_link_prints_every_channel_and_writes_poster_qr_codes(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BORGERDIALOG_PUBLIC_URL", PUBLIC_URL)
    no_traceback(cli("consultation", "import", str(example_open_soon(cli.folder))))
    result = cli("consultation", "link", "friluftsliv", "--bot", "@kommune_bot", "--qr-dir", "qr")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"web: {WEB_LINK}", f"telegram: {TELEGRAM_LINK}"]
    folder = cli.folder / "qr"
    assert sorted(path.name for path in folder.iterdir()) == [
        "friluftsliv-telegram.png",
        "friluftsliv-telegram.svg",
        "friluftsliv-web.png",
        "friluftsliv-web.svg",
    ]
    for channel, link in (("web", WEB_LINK), ("telegram", TELEGRAM_LINK)):
        assert_png_holds(folder / f"friluftsliv-{channel}.png", link)
        assert_svg_holds(folder / f"friluftsliv-{channel}.svg", link)


def test_link_without_a_bot_gives_the_web_link_and_says_how_to_get_telegrams(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BORGERDIALOG_PUBLIC_URL", PUBLIC_URL)
    no_traceback(cli("consultation", "import", str(example_open_soon(cli.folder))))
    result = cli("consultation", "link", "friluftsliv")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    web, how = result.stdout.splitlines()
    assert web == f"web: {WEB_LINK}"
    assert how.startswith("telegram: give --bot USERNAME (or set BORGERDIALOG_TELEGRAM_TOKEN)")
    assert sorted(path.name for path in cli.folder.glob("*.??g")) == [
        "friluftsliv-web.png",
        "friluftsliv-web.svg",
    ]
    assert_png_holds(cli.folder / "friluftsliv-web.png", WEB_LINK)
    assert "this machine only" not in result.stderr


def test_link_says_when_the_web_chat_link_opens_on_this_machine_only(cli: Cli) -> None:
    """Without BORGERDIALOG_PUBLIC_URL the web link is the bot's own address (127.0.0.1): a
    poster of it would open for nobody, so the command says so beside the link."""
    no_traceback(cli("consultation", "import", str(example_open_soon(cli.folder))))
    result = cli("consultation", "link", "friluftsliv", "--bot", "@kommune_bot")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    web = result.stdout.splitlines()[0]
    assert web.startswith("web: http://127.0.0.1:")
    assert (
        f"{web} opens on this machine only: set BORGERDIALOG_PUBLIC_URL to the address "
        "citizens use before printing its QR code"
    ) in result.stderr


def test_link_when_telegram_cannot_be_reached_is_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a token set, the link asks Telegram for the bot's name; offline that is one line
    that says how to go on, not the Telegram library's traceback."""
    monkeypatch.setenv("BORGERDIALOG_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("BORGERDIALOG_TELEGRAM_TOKEN", "123456:ABC-test-token")
    monkeypatch.setenv("BORGERDIALOG_TELEGRAM_API_URL", f"http://127.0.0.1:{free_port()}/bot")
    no_traceback(cli("consultation", "import", str(example_open_soon(cli.folder))))
    result = cli("consultation", "link", "friluftsliv")
    no_traceback(result)
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("borgerdialog: cannot reach Telegram to ask the bot's username")
    assert line.endswith("give --bot USERNAME")


WHATSAPP = {
    "BORGERDIALOG_WHATSAPP_TOKEN": "EAAGtest-token",
    "BORGERDIALOG_WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
    "BORGERDIALOG_WHATSAPP_APP_SECRET": "app-secret",
    "BORGERDIALOG_WHATSAPP_VERIFY_TOKEN": "verify-me",
}
WHATSAPP_LINK = "https://wa.me/4512345678?text=friluftsliv"


def test_link_gives_the_wa_me_link_and_its_qr_code_when_whatsapp_is_configured(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BORGERDIALOG_PUBLIC_URL", PUBLIC_URL)
    for name, value in WHATSAPP.items():
        monkeypatch.setenv(name, value)
    no_traceback(cli("consultation", "import", str(example_open_soon(cli.folder))))

    # Without the business number there is no link to print: the command says what to set.
    result = cli("consultation", "link", "friluftsliv", "--bot", "@kommune_bot")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("whatsapp: set BORGERDIALOG_WHATSAPP_NUMBER")
    assert not list(cli.folder.glob("*-whatsapp.*"))

    monkeypatch.setenv("BORGERDIALOG_WHATSAPP_NUMBER", "4512345678")
    result = cli("consultation", "link", "friluftsliv", "--bot", "@kommune_bot", "--qr-dir", "qr")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"web: {WEB_LINK}",
        f"telegram: {TELEGRAM_LINK}",
        f"whatsapp: {WHATSAPP_LINK}",
    ]
    folder = cli.folder / "qr"
    assert sorted(path.name for path in folder.glob("*-whatsapp.*")) == [
        "friluftsliv-whatsapp.png",
        "friluftsliv-whatsapp.svg",
    ]
    assert_png_holds(folder / "friluftsliv-whatsapp.png", WHATSAPP_LINK)
    assert_svg_holds(folder / "friluftsliv-whatsapp.svg", WHATSAPP_LINK)
    # No secret of WhatsApp's in anything the command printed.
    for secret in ("EAAGtest-token", "app-secret", "verify-me"):
        assert secret not in result.output
