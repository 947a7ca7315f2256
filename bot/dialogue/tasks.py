"""Ending background tasks at shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

# How long a cancelled task gets to end before it is cancelled again.
RECANCEL_SECONDS = 0.5


async def stop_tasks(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel background tasks and return once every one has ended (None ones are skipped).

    One cancel is not always enough. Python 3.11's ``asyncio.wait_for`` returns the awaited
    call's result when that call finished in the same step as the cancel (fixed in 3.12), so the
    task never sees it and goes on, for example to wait on its queue for good. That once held a
    shutdown forever. The cancel is therefore repeated until the task has ended.
    """
    started = [task for task in tasks if task is not None]
    pending = {task for task in started if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
    for task in started:
        if not task.cancelled():
            task.exception()  # retrieved: a failure at shutdown is no news for the log
