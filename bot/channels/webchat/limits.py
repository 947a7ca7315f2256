"""Abuse limits for the web chat: token buckets and open-socket counts, per cookie and address.

Cookies are free to get, so every per-cookie limit has a larger per-address twin. State is
bounded: a bucket that has filled up again holds nothing worth keeping and is dropped, and when
more keys than allowed are tracked the least recently used go first.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

# Many addresses share nothing; an IPv6 host usually holds a whole /64, so that is one address.
_IPV6_PREFIX = 64


class TokenBuckets:
    """A token bucket per key: ``burst`` at once, then ``per_second``; bounded in size."""

    def __init__(
        self,
        burst: float,
        per_second: float,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.per_second = per_second
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> bool:
        """Take one token for this key; False when its bucket is empty."""
        now = self._clock()
        tokens, stamp = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.per_second)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        self._evict(now)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        # The oldest entries come first: drop those that have refilled (they are as good as
        # absent), and beyond max_keys drop the least recently used even if not yet full.
        refill = self.burst / self.per_second
        while self._buckets:
            key, (_tokens, stamp) = next(iter(self._buckets.items()))
            if len(self._buckets) <= self.max_keys and now - stamp < refill:
                break
            del self._buckets[key]


class OpenCounts:
    """How many sockets are open per key, with a cap; a key at zero is forgotten."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def has_room(self, key: str) -> bool:
        """Whether one more may open for this key."""
        return self._counts.get(key, 0) < self.limit

    def opened(self, key: str) -> None:
        """Count one more open for this key."""
        self._counts[key] = self._counts.get(key, 0) + 1

    def closed(self, key: str) -> None:
        """Count one fewer open for this key."""
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)

    def __len__(self) -> int:
        return len(self._counts)


def client_address(request: web.Request, trusted_proxy: bool) -> str:
    """The address limits count a request under: the peer, or what a trusted proxy saw."""
    address = request.remote or ""
    if trusted_proxy:
        # A proxy appends the address it saw; earlier entries are whatever the client claimed.
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        address = forwarded or address
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/{_IPV6_PREFIX}", strict=False))
    return str(parsed)
