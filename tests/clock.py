"""A clock the test moves by hand, for the application's injectable clock."""

from __future__ import annotations

from datetime import datetime


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now
