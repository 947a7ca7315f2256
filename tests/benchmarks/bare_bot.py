"""The load benchmark's baseline: a bare python-telegram-bot bot, nothing of ours but transport.

Run by ``tests.benchmarks.load`` as a process of its own, exactly as ``borgerdialog run`` is: it
long-polls getUpdates through PTB's own Updater and answers every text message with one message,
on the same aiohttp transport borgerdialog uses. No storage, no flows: what any bot costs.
"""

from __future__ import annotations

import argparse
from typing import Any

from telegram import Update
from telegram.ext import ApplicationBuilder, MessageHandler, filters

from bot.channels.telegram.transport import AiohttpRequest


async def answer(update: Update, _context: Any) -> None:
    """Answer a message with one text, as the shortest possible flow does."""
    assert update.effective_chat is not None
    await update.get_bot().send_message(update.effective_chat.id, "Tak for din besked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--concurrency", type=int, default=256)
    arguments = parser.parse_args()
    application = (
        ApplicationBuilder()
        .token(arguments.token)
        .base_url(arguments.api_url)
        .request(AiohttpRequest(arguments.concurrency))
        .get_updates_request(AiohttpRequest(1, read_timeout=10.0))
        .concurrent_updates(arguments.concurrency)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, answer))
    application.run_polling(poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
