"""Unsubscribe links: the address's id and a keyed hash of it, so nobody can guess another's."""

from __future__ import annotations

import hmac
from urllib.parse import quote

from handlers.email import UNSUBSCRIBE_PATH
from handlers.events import record_id

# Enough of the HMAC that guessing is hopeless, short enough for a tidy link.
MAC_CHARACTERS = 32


class UnsubscribeLinks:
    """Make and check the one-click unsubscribe links of e-mail addresses."""

    def __init__(self, key: bytes, base_url: str) -> None:
        self._key = key
        self._base_url = base_url

    def _mac(self, address_id: int) -> str:
        digest = hmac.new(self._key, f"unsubscribe:{address_id}".encode(), "sha256")
        return digest.hexdigest()[:MAC_CHARACTERS]

    def token(self, address_id: int) -> str:
        """The token of an address's unsubscribe link."""
        return f"{address_id}.{self._mac(address_id)}"

    def url(self, address_id: int) -> str:
        """The full unsubscribe link of an address."""
        return f"{self._base_url}{UNSUBSCRIBE_PATH}?token={quote(self.token(address_id))}"

    def address_id(self, token: str) -> int | None:
        """The address a token names, if the token is genuine."""
        number, _, mac = token.partition(".")
        address_id = record_id(number)
        if address_id is None or not hmac.compare_digest(
            mac.encode("utf-8", "replace"), self._mac(address_id).encode()
        ):
            return None
        return address_id
