"""What each running part says about itself, gathered for /healthz and logged once per change."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


class HealthBoard:
    """Faults reported by the parts of the running bot (intake, delivery, jobs), by part.

    A part reports a fault when a loop of its own hits one and clears it when the loop gets
    through again; the log says each change once, not once per retry.
    """

    def __init__(self) -> None:
        # part -> (reason, monotonic time after which it no longer counts, or None: until cleared)
        self._faults: dict[str, tuple[str, float | None]] = {}

    def fault(self, part: str, reason: str, *, lasting: float | None = None) -> None:
        """Record that a part is failing, and why (no personal data in the reason).

        A part that only runs now and then (an hourly job) cannot say when it works again;
        its fault counts for ``lasting`` seconds unless reported again.
        """
        known = self._faults.get(part)
        if known is None or known[0] != reason:
            logger.warning("%s degraded: %s; retrying", part, reason)
        self._faults[part] = (reason, None if lasting is None else time.monotonic() + lasting)

    def clear(self, part: str) -> None:
        """Record that a part works again."""
        if self._faults.pop(part, None) is not None:
            logger.warning("%s recovered", part)

    def faults(self) -> dict[str, str]:
        """The parts failing now, with their reasons."""
        now = time.monotonic()
        return {
            part: reason
            for part, (reason, until) in self._faults.items()
            if until is None or until > now
        }
