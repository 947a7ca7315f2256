"""Commands typed as words, for channels without slash commands (WhatsApp, Messenger).

On Telegram a citizen taps /mydata in the menu; on WhatsApp there is no menu, so "mine data" or
"my data", typed as the whole message, does the same. Only a whole message counts ("glem mig"
but not "jeg vil ikke have at I glemmer mig"), so an answer that merely contains such a word is
never taken for a command. The names are the router's (``handlers.router.COMMANDS``).
"""

from __future__ import annotations

import re
import unicodedata

# What a citizen types, lower case and without the punctuation around it, by the command.
WORDS: dict[str, str] = {
    "mine data": "mydata",
    "minedata": "mydata",
    "my data": "mydata",
    "mydata": "mydata",
    "glem mig": "forget",
    "glem": "forget",
    "forget me": "forget",
    "forget": "forget",
    "stop": "stop",
    "stopp": "stop",
    "hjælp": "help",
    "hjaelp": "help",
    "help": "help",
    "privatliv": "privacy",
    "privacy": "privacy",
    "sprog": "language",
    "language": "language",
    "start": "start",
    "ideer": "ideas",
    "idéer": "ideas",
    "ideas": "ideas",
}
# "start friluftsliv": the words a wa.me link could carry, or a citizen types from a poster.
_START = re.compile(r"start\s+([a-z0-9][a-z0-9-]{0,63})")
_AROUND = " .,!?¡¿:;'\"«»()"


def read_typed_command(text: str) -> tuple[str, str] | None:
    """The command (name, argument) a whole message names, or None for anything else."""
    words = " ".join(unicodedata.normalize("NFC", text).strip(_AROUND).lower().split())
    if not words or len(words) > 80:
        return None
    if words.startswith("/"):
        return None  # a slash command: the channel reads it as typed
    name = WORDS.get(words)
    if name is not None:
        return name, ""
    started = _START.fullmatch(words)
    if started is not None:
        return "start", started.group(1)
    return None
