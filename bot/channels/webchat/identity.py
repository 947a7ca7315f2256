"""The web participant's identity: a random id in a signed, HTTP-only cookie; no account.

A cookie reads ``<participant>.<issued>.<signature>``: the signature covers the participant id
and the time it was issued, so a copied cookie stops working after MAX_AGE even if a browser
kept it, and the page re-issues it (sliding) each time it is opened. Signing uses the current
secret; the previous secret is still accepted, so a secret can be rotated without sending every
citizen back to the start: their next page load re-signs the cookie with the new one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

COOKIE = "borgerdialog_id"
# Sliding: every page load re-issues the cookie, so only a participant who stays away this long
# starts over as a new one.
MAX_AGE_SECONDS = 90 * 24 * 3600
# A cookie issued this far in the future is not ours (or the clock jumped): refused.
_CLOCK_SKEW_SECONDS = 300
# What secrets.token_urlsafe(18) makes: the inbox keys of the web chat are sized for it.
_PARTICIPANT = re.compile(r"[A-Za-z0-9_-]{24}")
_ISSUED = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{32}")


class CookieSigner:
    """Issue and check participant cookies signed with a server secret (and a previous one)."""

    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        self._secret = secret
        self._previous = tuple(key for key in previous if key and key != secret)

    def accepting(self, previous: Sequence[bytes]) -> CookieSigner:
        """The same signer, also accepting cookies signed with earlier secrets."""
        return CookieSigner(self._secret, (*self._previous, *previous))

    def issue(self, now: datetime, participant: str | None = None) -> str:
        """A cookie for a new participant (or a fresh one for a known participant)."""
        participant = participant or secrets.token_urlsafe(18)
        issued = str(int(now.timestamp()))
        return f"{participant}.{issued}.{self._sign(self._secret, participant, issued)}"

    def verify(self, cookie: str | None, now: datetime, *, legacy: bool = False) -> str | None:
        """Return the participant id a cookie carries; None if missing, forged or expired.

        With ``legacy``, also accept a cookie from before issue times were signed (the page
        re-issues it at once, so the socket never needs to).
        """
        if not cookie or len(cookie) > 200:
            return None
        parts = cookie.split(".")
        if legacy and len(parts) == 2:
            return self._verify_legacy(*parts)
        if len(parts) != 3:
            return None
        participant, issued, signature = parts
        if not (
            _PARTICIPANT.fullmatch(participant)
            and _ISSUED.fullmatch(issued)
            and _SIGNATURE.fullmatch(signature)
        ):
            return None
        age = int(now.timestamp()) - int(issued)
        if not -_CLOCK_SKEW_SECONDS <= age <= MAX_AGE_SECONDS:
            return None
        for key in (self._secret, *self._previous):
            if hmac.compare_digest(signature, self._sign(key, participant, issued)):
                return participant
        return None

    def _verify_legacy(self, participant: str, signature: str) -> str | None:
        if not (_PARTICIPANT.fullmatch(participant) and _SIGNATURE.fullmatch(signature)):
            return None
        for key in (self._secret, *self._previous):
            expected = hmac.new(key, participant.encode(), hashlib.sha256).hexdigest()[:32]
            if hmac.compare_digest(signature, expected):
                return participant
        return None

    @staticmethod
    def _sign(key: bytes, participant: str, issued: str) -> str:
        message = f"{participant}.{issued}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def load_or_create_secret(data_dir: Path) -> bytes:
    """Read the cookie secret from the data folder, creating it on first start."""
    path = data_dir / "web-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()
