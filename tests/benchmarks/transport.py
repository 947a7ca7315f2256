"""Benchmark: replies per second of a bare PTB bot, default httpx transport vs. ours (aiohttp).

Run: ``.venv/bin/python -m tests.benchmarks.transport`` (options: --help).

A bare python-telegram-bot Application answers every message, with no storage, against the fake
Bot API server running in a separate process with a simulated round trip. Both transports are
measured in the same run on the same machine, and the result is reported as a ratio, so the
number means something on any machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, MessageHandler, filters
from telegram.request import BaseRequest, HTTPXRequest

from bot.channels.telegram.transport import AiohttpRequest


def start_fake(latency: float) -> tuple[subprocess.Popen[str], dict[str, str]]:
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_telegram",
            "--latency",
            str(latency),
            "--auto-chats",
            "--burst",
            "1000000",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    return fake, json.loads(fake.stdout.readline())


def make_update(update_id: int, chat_id: int, bot_user: dict[str, Any]) -> dict[str, Any]:
    user = {"id": chat_id, "is_bot": False, "first_name": "Borger"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "from": user,
            "text": "hej",
            "chat": {"id": chat_id, "type": "private", "first_name": "Borger"},
        },
    }


async def measure(transport: str, fake: dict[str, str], concurrency: int, messages: int) -> float:
    request: BaseRequest
    if transport == "httpx":
        request = HTTPXRequest(connection_pool_size=concurrency)
    else:
        request = AiohttpRequest(concurrency)
    done = asyncio.Event()
    answered = 0

    async def answer(update: Update, _context: Any) -> None:
        nonlocal answered
        assert update.effective_chat is not None
        await update.get_bot().send_message(update.effective_chat.id, "Tak for din besked")
        answered += 1
        if answered == messages:
            done.set()

    app: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(fake["token"])
        .base_url(fake["api_url"])
        .request(request)
        .updater(None)
        .concurrent_updates(concurrency)
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, answer))
    async with app:
        await app.start()
        updates = [
            Update.de_json(make_update(n, 10_000 + n % 5_000, {}), app.bot)
            for n in range(1, messages + 1)
        ]
        started = time.perf_counter()
        for update in updates:
            app.update_queue.put_nowait(update)
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        await app.stop()
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="simulated round trip (s)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    fake_process, fake = start_fake(arguments.latency)
    try:
        print(
            f"round trip {arguments.latency * 1000:.0f} ms, {arguments.messages} messages, "
            f"median of {arguments.repeat} runs"
        )
        for concurrency in arguments.concurrency:
            rates: dict[str, float] = {}
            for transport in ("httpx", "aiohttp"):
                runs = [
                    asyncio.run(measure(transport, fake, concurrency, arguments.messages))
                    for _ in range(arguments.repeat)
                ]
                rates[transport] = statistics.median(runs)
            print(
                f"concurrency {concurrency:4d}: httpx {rates['httpx']:7.0f}/s  "
                f"aiohttp {rates['aiohttp']:7.0f}/s  ratio {rates['aiohttp'] / rates['httpx']:.2f}x"
            )
    finally:
        fake_process.terminate()
        fake_process.wait()


if __name__ == "__main__":
    main()
