"""What each running part says about itself, gathered for /healthz and logged once per change."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class HealthBoard:
    """Faults reported by the parts of the running bot (intake, delivery, jobs), by part.

    A part reports a fault when a loop of its own hits one and clears it when the loop gets
    through again; the log says each change once, not once per retry.
    """

    def __init__(self) -> None:
        self._faults: dict[str, str] = {}

    def fault(self, part: str, reason: str) -> None:
        """Record that a part is failing, and why (no personal data in the reason)."""
        if self._faults.get(part) != reason:
            logger.warning("%s degraded: %s; retrying", part, reason)
        self._faults[part] = reason

    def clear(self, part: str) -> None:
        """Record that a part works again."""
        if self._faults.pop(part, None) is not None:
            logger.warning("%s recovered", part)

    def faults(self) -> dict[str, str]:
        """The parts failing now, with their reasons."""
        return dict(self._faults)
