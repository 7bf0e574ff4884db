"""HTTP digest authentication for SIP (RFC 3261 22, RFC 8760 SHA-256): server checks and client answers.

Nonces are stateless: timestamp + HMAC with a per-process key, valid NONCE_LIFETIME seconds (then
"stale"). Unknown users are checked against a random secret so they cost and look the same as a wrong
password.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .sip.message import Request, split_commas

NONCE_LIFETIME = 300
ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_digest(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params = {}
    for item in split_commas(rest):
        name, sep, val = item.partition("=")
        if not sep:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        params[name.strip().lower()] = val
    return params


def _h(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode()).hexdigest()


def digest_response(algorithm: str, username: str, realm: str, password: str, method: str, uri: str,
                    nonce: str, qop: str | None = None, nc: str = "", cnonce: str = "") -> str:
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


@dataclass
class AuthResult:
    outcome: str  # "ok", "missing", "stale", "failed"
    username: str = ""


class DigestServer:
    def __init__(self, realm: str, lookup: Callable[[str], str | None],
                 algorithms: tuple[str, ...] = ("SHA-256", "MD5")) -> None:
        self.realm = realm
        self.algorithms = tuple(algorithms)
        self.lookup = lookup  # username -> secret (None: unknown)
        self._key = secrets.token_bytes(32)
        self._dummy = secrets.token_hex(16)

    def _nonce(self, ts: int | None = None) -> str:
        ts = int(time.time()) if ts is None else ts
        mac = hmac.new(self._key, str(ts).encode(), hashlib.sha256).hexdigest()[:24]
        return f"{ts:x}{mac}"

    def _nonce_state(self, nonce: str) -> str:
        try:
            ts = int(nonce[:-24], 16)
        except ValueError:
            return "bad"
        if not hmac.compare_digest(self._nonce(ts), nonce):
            return "bad"
        return "fresh" if 0 <= time.time() - ts < NONCE_LIFETIME else "stale"

    def challenges(self, stale: bool = False) -> list[str]:
        """WWW-/Proxy-Authenticate values, one per algorithm, preferred first (RFC 8760 section 2.4)."""
        nonce = self._nonce()
        extra = ", stale=true" if stale else ""
        return [f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={alg}, qop="auth"{extra}'
                for alg in self.algorithms]

    def check(self, req: Request, header: str) -> AuthResult:
        values = req.get_all(header)
        if not values:
            return AuthResult("missing")
        for value in values:
            params = parse_digest(value)
            if params.get("realm") != self.realm:
                continue
            return self._verify(req, params)
        return AuthResult("missing")

    def _verify(self, req: Request, p: dict[str, str]) -> AuthResult:
        username = p.get("username", "")
        algorithm = p.get("algorithm", "MD5").upper()
        if algorithm not in ALGORITHMS or not username or len(username) > 64:
            return AuthResult("failed", username)
        for name in ("nonce", "uri", "response"):
            if not p.get(name):
                return AuthResult("failed", username)
        state = self._nonce_state(p["nonce"])
        if state == "bad":
            return AuthResult("failed", username)
        secret = self.lookup(username)
        known = secret is not None
        qop = p.get("qop")
        if qop and qop != "auth":
            return AuthResult("failed", username)
        expected = digest_response(algorithm, username, self.realm, secret if known else self._dummy,
                                   req.method, p["uri"], p["nonce"], qop, p.get("nc", ""), p.get("cnonce", ""))
        if not hmac.compare_digest(expected, p["response"].lower()) or not known:
            return AuthResult("failed", username)
        if state == "stale":
            return AuthResult("stale", username)
        return AuthResult("ok", username)


def authorization(challenge: str, method: str, uri: str, username: str, password: str) -> str | None:
    """Our answer to a carrier's challenge (for outbound REGISTER/INVITE); None if unusable."""
    p = parse_digest(challenge)
    algorithm = p.get("algorithm", "MD5").upper()
    if algorithm not in ALGORITHMS or "nonce" not in p:
        return None
    realm = p.get("realm", "")
    qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else None
    cnonce = secrets.token_hex(8)
    nc = "00000001"
    resp = digest_response(algorithm, username, realm, password, method, uri, p["nonce"], qop, nc, cnonce)
    value = (f'Digest username="{username}", realm="{realm}", nonce="{p["nonce"]}", uri="{uri}", '
             f'response="{resp}", algorithm={algorithm}')
    if qop:
        value += f', qop={qop}, nc={nc}, cnonce="{cnonce}"'
    if "opaque" in p:
        value += f', opaque="{p["opaque"]}"'
    return value


def pick_challenge(values: list[str]) -> str | None:
    """Prefer SHA-256 over MD5 when a server offers both."""
    usable = [v for v in values if parse_digest(v).get("algorithm", "MD5").upper() in ALGORITHMS]
    usable.sort(key=lambda v: parse_digest(v).get("algorithm", "MD5").upper() != "SHA-256")
    return usable[0] if usable else None
