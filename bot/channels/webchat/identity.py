"""The web participant's identity: a random id in a signed, HTTP-only cookie; no account."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

COOKIE = "borgerdialog_id"


class CookieSigner:
    """Issue and check participant cookies signed with a server secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self) -> str:
        """A new participant id with its signature."""
        participant = secrets.token_urlsafe(18)
        return f"{participant}.{self._sign(participant)}"

    def verify(self, cookie: str | None) -> str | None:
        """Return the participant id a cookie carries, or None if it is missing or forged."""
        if not cookie or "." not in cookie:
            return None
        participant, signature = cookie.rsplit(".", 1)
        return participant if hmac.compare_digest(signature, self._sign(participant)) else None

    def _sign(self, participant: str) -> str:
        return hmac.new(self._secret, participant.encode(), hashlib.sha256).hexdigest()[:32]


def load_or_create_secret(data_dir: Path) -> bytes:
    """Read the cookie secret from the data folder, creating it on first start."""
    path = data_dir / "web-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()
