"""HTTP digest authentication for SIP (RFC 3261 22, RFC 7616, RFC 8760 SHA-256): server checks and client answers.

A nonce carries its time and a MAC over (time, the address the challenge went to), valid NONCE_LIFETIME
seconds (then "stale"): a source answering with a nonce made for its own address proved it receives our
replies. Each nonce-count is accepted once (a replayed Authorization gets a fresh challenge) and the
digest uri must name the Request-URI (a captured INVITE cannot call another number). Unknown users are
checked against a random secret so they cost and look the same as a wrong password.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .sip.message import ParseError, Request, Uri, random_hex, split_commas

NONCE_LIFETIME = 300
NC_WINDOW = 64  # counts this far below the highest one seen may still come (requests cross on UDP)
MAX_NONCES = 20_000  # nonces in use tracked at once; beyond that the oldest ones turn stale
ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_NC = re.compile(r"[0-9a-fA-F]{8}")


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


def same_resource(digest_uri: str, request_uri: Uri) -> bool:
    """The digest `uri` names the Request-URI: scheme, user (the number called) and host; the port and
    parameters may differ (SIPp, for one, adds the port the request was sent to)."""
    try:
        uri = Uri.parse(digest_uri)
    except ParseError:
        return False
    return (uri.scheme, uri.user, uri.host.lower()) == (request_uri.scheme, request_uri.user, request_uri.host.lower())


class NonceCounts:
    """The nonce-counts each nonce was used with, to refuse a replay: the highest count and a bitmap of
    the NC_WINDOW counts below it. Entries leave in order of first use once their nonce has expired;
    when `limit` are in use, the oldest leaves early and every nonce issued before it turns stale."""

    def __init__(self, limit: int = MAX_NONCES) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, list] = OrderedDict()  # nonce -> [first use, highest nc, bitmap]
        self._floor = -1  # nonces issued at or before this time are stale

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, nonce: str, issued: int, nc: int) -> bool:
        """Record one use of (nonce, nc); False when it was used before (or can no longer be told)."""
        now = time.time()
        while self._seen:
            oldest, entry = next(iter(self._seen.items()))
            if now - entry[0] < NONCE_LIFETIME and len(self._seen) < self.limit:
                break
            if now - entry[0] < NONCE_LIFETIME:
                self._floor = max(self._floor, int(oldest[:8], 16))
            del self._seen[oldest]
        if issued <= self._floor:
            return False
        entry = self._seen.get(nonce)
        if entry is None:
            self._seen[nonce] = [now, nc, 1]
            return True
        highest, bitmap = entry[1], entry[2]
        if nc > highest:
            entry[1], entry[2] = nc, ((bitmap << (nc - highest)) | 1) & ((1 << NC_WINDOW) - 1)
            return True
        offset = highest - nc
        if offset >= NC_WINDOW or bitmap >> offset & 1:
            return False
        entry[2] = bitmap | 1 << offset
        return True


@dataclass
class AuthResult:
    outcome: str  # "ok", "missing" (challenge), "stale" (challenge with stale=true), "failed" (403)
    username: str = ""
    proved: bool = False  # answered with a nonce we sent to its address: it receives our replies


class DigestServer:
    def __init__(self, realm: str, lookup: Callable[[str], str | None],
                 algorithms: tuple[str, ...] = ("SHA-256", "MD5"), md5_only_agents: Iterable[str] = ()) -> None:
        self.lookup = lookup  # username -> secret (None: unknown)
        self._key = secrets.token_bytes(32)
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)  # copied per nonce: no key set-up each time
        self._dummy = secrets.token_hex(16)
        self.counts = NonceCounts()
        self.configure(realm, algorithms, md5_only_agents)

    def configure(self, realm: str, algorithms: Iterable[str], md5_only_agents: Iterable[str] = ()) -> None:
        self.realm = realm
        self.algorithms = tuple(algorithms)
        self.md5_only_agents = [re.compile(p) for p in md5_only_agents]

    def _nonce(self, ip: str, ts: int | None = None, salt: str | None = None) -> str:
        """time (8 hex digits), salt (16: each challenge its own nonce), MAC over both and `ip` (32)."""
        ts = int(time.time()) if ts is None else ts
        salt = random_hex(16) if salt is None else salt
        mac = self._keyed.copy()
        mac.update(f"{ts}:{salt}:{ip}".encode())
        return f"{ts:08x}{salt}{mac.hexdigest()[:32]}"

    def _issued(self, nonce: str, ip: str) -> int | None:
        """When we issued this nonce to `ip`; None for a nonce we never sent there."""
        if len(nonce) != 56:
            return None
        try:
            ts = int(nonce[:8], 16)
        except ValueError:
            return None
        return ts if hmac.compare_digest(self._nonce(ip, ts, nonce[8:24]), nonce) else None

    def offered(self, user_agent: str = "") -> tuple[str, ...]:
        """Algorithms to offer this client: MD5 alone to agents that fail on any other (libre < 3.12)."""
        if "MD5" in self.algorithms and any(p.search(user_agent) for p in self.md5_only_agents):
            return ("MD5",)
        return self.algorithms

    def challenges(self, ip: str = "", stale: bool = False, user_agent: str = "") -> list[str]:
        """WWW-/Proxy-Authenticate values, one per algorithm, preferred first (RFC 8760 section 2.4)."""
        nonce = self._nonce(ip)
        extra = ", stale=true" if stale else ""
        return [f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={alg}, qop="auth"{extra}'
                for alg in self.offered(user_agent)]

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
        if not all(p.get(name) for name in ("nonce", "uri", "response")):
            return AuthResult("failed", username)
        qop, nc = p.get("qop"), 0
        if qop:
            if qop != "auth" or not _NC.fullmatch(p.get("nc", "")) or not p.get("cnonce"):
                return AuthResult("failed", username)
            nc = int(p["nc"], 16)
        if algorithm not in self.algorithms or not same_resource(p["uri"], req.uri):
            return AuthResult("missing", username)  # not what we offer, or not for this request
        issued = self._issued(p["nonce"], req.source[1] if req.source else "")
        if issued is None:
            # forged, or sent to another address (a replay from elsewhere, a phone whose NAT moved): the
            # same answer whatever the response, so it can never test passwords without being counted
            return AuthResult("stale", username)
        secret = self.lookup(username)
        known = secret is not None
        expected = digest_response(algorithm, username, self.realm, secret if known else self._dummy,
                                   req.method, p["uri"], p["nonce"], qop, p.get("nc", ""), p.get("cnonce", ""))
        if not hmac.compare_digest(expected, p["response"].lower()) or not known:
            return AuthResult("failed", username, proved=True)
        if not 0 <= time.time() - issued < NONCE_LIFETIME or not self.counts.first_use(p["nonce"], issued, nc):
            return AuthResult("stale", username, proved=True)
        return AuthResult("ok", username, proved=True)


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
