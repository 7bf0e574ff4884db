"""Who a JSON API request comes from: an admin-made token (its SHA-256 is in the configuration) or a
short-lived desk token minted for a signed-in staff user (kept in memory only), and the per-token
request rate."""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

MAX_DESK_TOKENS = 5000


def new_token() -> str:
    """A token of 256 random bits, as the web admin shows it once."""
    return "obx_" + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Holder:
    """What a token may do: `scope` ({"*"}: every extension); a desk token's `login` and `extension`."""

    name: str
    scope: frozenset[str]
    key: str  # the token's digest: rate buckets and revocation
    login: str = ""
    extension: str = ""
    expires: float = 0.0

    def allowed(self, device: str) -> bool:
        return "*" in self.scope or device in self.scope

    def as_json(self) -> dict:
        return {"name": self.name, "scope": sorted(self.scope), "login": self.login,
                "extension": self.extension, "expires": self.expires or None}


class Tokens:
    def __init__(self) -> None:
        self.configured: dict[str, Holder] = {}
        self.desk: dict[str, Holder] = {}
        self.buckets: dict[str, tuple[float, float]] = {}  # digest -> (tokens left, when counted)

    def configure(self, api_tokens: list) -> None:
        self.configured = {t.token_hash: Holder(t.name, frozenset(t.scope), t.token_hash)
                           for t in api_tokens if t.enabled}
        known = set(self.configured) | set(self.desk)
        self.buckets = {k: v for k, v in self.buckets.items() if k in known}

    def mint_desk(self, login: str, extension: str, minutes: int) -> tuple[str, float]:
        now = time.time()
        self.desk = {k: h for k, h in self.desk.items() if h.expires > now}
        if len(self.desk) >= MAX_DESK_TOKENS:
            oldest = min(self.desk.values(), key=lambda h: h.expires)
            self.desk.pop(oldest.key)
        token, expires = new_token(), now + minutes * 60
        key = digest(token)
        self.desk[key] = Holder(f"desk:{login}", frozenset({extension}), key, login, extension, expires)
        return token, expires

    def revoke_user(self, keep_logins: set[str]) -> None:
        """Desk tokens of users who are gone or lost their extension stop working."""
        self.desk = {k: h for k, h in self.desk.items() if h.login in keep_logins}

    def holder(self, token: str) -> Holder | None:
        if not token or len(token) > 200:
            return None
        key = digest(token)
        found = self.configured.get(key) or self.desk.get(key)
        if found is None or (found.expires and found.expires < time.time()):
            return None
        return found

    def take(self, holder: Holder, per_second: int) -> bool:
        """One request of `holder`'s rate (a bucket of `per_second`, refilled continuously)."""
        now = time.monotonic()
        left, then = self.buckets.get(holder.key, (float(per_second), now))
        left = min(float(per_second), left + (now - then) * per_second)
        if left < 1:
            self.buckets[holder.key] = (left, now)
            return False
        self.buckets[holder.key] = (left - 1, now)
        return True
