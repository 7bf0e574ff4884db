"""Web admin security parts: the session secret, server-side sign-in sessions, the login lock-out, the
bound on concurrent password checks, the first-boot setup code, and the two-factor sign-in parts (pending
sign-ins, key enrolment, TOTP codes without replay, recovery codes)."""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyotp

from appliance.fsutil import atomic_write
from appliance.users import hash_password, verify_password

log = logging.getLogger("officebox.webadmin")
SECRET_FILE = "webadmin-secret.key"
SECRET_BYTES = 32


def load_secret_key(data_dir: Path) -> bytes:
    """The cookie-signing key: generated once, kept in a 0600 file under the data directory."""
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        tmp = path.with_name(f".{SECRET_FILE}.new{os.getpid()}")
        atomic_write(tmp, secrets.token_bytes(SECRET_BYTES), mode=0o600)
        try:
            os.link(tmp, path)  # atomic and refuses to replace a key another process just created
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    os.chmod(path, 0o600)
    key = path.read_bytes()
    if len(key) < SECRET_BYTES:  # damaged: a new key only signs everybody out
        log.warning("%s is damaged; generating a new web admin secret", path)
        key = secrets.token_bytes(SECRET_BYTES)
        atomic_write(path, key, mode=0o600)
    return key


def password_fingerprint(password_hash: str | None) -> str:
    """Changes whenever the password changes: a session opened with the old password ends."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:32]


@dataclass
class SignIn:
    login: str
    fingerprint: str
    created: float
    last_seen: float


class SessionRegistry:
    """Signed-in sessions kept on the server, so signing out (or a password change) really ends them.

    The browser cookie only carries a random session id; a restart signs everybody out.
    """

    IDLE_TIMEOUT = 30 * 60
    MAX_AGE = 12 * 3600
    MAX_SESSIONS = 1000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, SignIn] = {}

    def open(self, login: str, password_hash: str | None) -> str:
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._expire(now)
            if len(self._items) >= self.MAX_SESSIONS:
                oldest = min(self._items, key=lambda k: self._items[k].last_seen)
                del self._items[oldest]
            self._items[sid] = SignIn(login, password_fingerprint(password_hash), now, now)
        return sid

    def lookup(self, sid: str | None, password_hash_of: Callable[[str], str | None | bool]) -> str | None:
        """The login of a live session; `password_hash_of(login)` returns False for a user who is gone."""
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            entry = self._items.get(sid)
            if entry is None:
                return None
            current = password_hash_of(entry.login)
            if (current is False or password_fingerprint(current) != entry.fingerprint
                    or now - entry.last_seen > self.IDLE_TIMEOUT or now - entry.created > self.MAX_AGE):
                del self._items[sid]
                return None
            entry.last_seen = now
            return entry.login

    def rebind(self, sid: str | None, password_hash: str | None) -> None:
        """Keep this session alive after its own user changed their password."""
        with self._lock:
            if sid in self._items:
                self._items[sid].fingerprint = password_fingerprint(password_hash)

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._items.pop(sid or "", None)

    def _expire(self, now: float) -> None:
        for sid in [s for s, e in self._items.items()
                    if now - e.last_seen > self.IDLE_TIMEOUT or now - e.created > self.MAX_AGE]:
            del self._items[sid]


class Lockout:
    """Growing delay after failed sign-ins, per login and per client address (in memory).

    FREE_TRIES failures are free; after that each new failure doubles the wait: 2, 4, 8 ... seconds,
    capped at MAX_DELAY. A success clears the counters of the keys it used.
    """

    FREE_TRIES = 5
    MAX_DELAY = 3600
    MAX_KEYS = 10000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._fails: dict[tuple[str, str], tuple[int, float]] = {}

    @classmethod
    def delay(cls, failures: int) -> float:
        if failures < cls.FREE_TRIES:
            return 0.0
        return float(min(2 ** (failures - cls.FREE_TRIES + 1), cls.MAX_DELAY))

    def wait_time(self, *keys: tuple[str, str]) -> float:
        """Seconds before another attempt with these keys is allowed (0: go ahead)."""
        now = self.clock()
        with self._lock:
            waits = [last + self.delay(count) - now for count, last in
                     (self._fails[k] for k in keys if k in self._fails)]
        return max([0.0, *waits])

    def failed(self, *keys: tuple[str, str]) -> None:
        now = self.clock()
        with self._lock:
            if len(self._fails) >= self.MAX_KEYS:
                self._forget_oldest(now)
            for key in keys:
                count, _ = self._fails.get(key, (0, now))
                self._fails[key] = (count + 1, now)

    def succeeded(self, *keys: tuple[str, str]) -> None:
        with self._lock:
            for key in keys:
                self._fails.pop(key, None)

    def _forget_oldest(self, now: float) -> None:
        stale = [k for k, (count, last) in self._fails.items() if now - last > self.delay(count) + 3600]
        for key in stale or sorted(self._fails, key=lambda k: self._fails[k][1])[: self.MAX_KEYS // 10]:
            del self._fails[key]


class Busy(Exception):
    """Every password-check slot stayed taken: the client is told to try again."""


class PasswordChecks:
    """At most LIMIT argon2 verifications at once (each takes a core and 64 MiB): a flood of sign-ins
    waits WAIT seconds for a slot at most, then gets "busy, try again" instead of piling up."""

    LIMIT = 2
    WAIT = 3.0

    def __init__(self, limit: int = LIMIT, wait: float = WAIT) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self.wait = wait

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.wait):
            raise Busy
        try:
            yield
        finally:
            self._slots.release()


class SetupCode:
    """The one-time code the first-boot wizard asks for: printed on the console at each start of a box
    not yet set up, checked against an argon2 hash in a 0600 file, removed once the wizard succeeded.
    The code itself is also kept, root-only (0600), for the OS image's console banner to show (a person
    who can read it already holds the box's disk)."""

    FILE = "setup-code.hash"
    SHOWN = "setup-code"
    ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
    LENGTH = 8

    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir) / self.FILE
        self.shown = Path(data_dir) / self.SHOWN

    @staticmethod
    def normalize(code: str) -> str:
        return "".join(code.split()).replace("-", "").upper()

    def issue(self) -> str:
        """A new code (the previous one stops working), shown as XXXX-XXXX."""
        code = "".join(secrets.choice(self.ALPHABET) for _ in range(self.LENGTH))
        atomic_write(self.path, hash_password(code).encode(), mode=0o600)
        atomic_write(self.shown, f"{code[:4]}-{code[4:]}\n".encode(), mode=0o600)
        return f"{code[:4]}-{code[4:]}"

    def active(self) -> bool:
        return self.path.exists()

    def matches(self, code: str) -> bool:
        try:
            stored = self.path.read_text().strip()
        except FileNotFoundError:
            return False
        return verify_password(stored, self.normalize(code))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.shown.unlink(missing_ok=True)


class PendingSignIns(SessionRegistry):
    """Sign-ins whose password was right and whose two-factor code is still to come: five minutes at most,
    and they end like sessions when the password changes meanwhile."""

    IDLE_TIMEOUT = 5 * 60
    MAX_AGE = 5 * 60


class Enrolments:
    """Two-factor keys being set up, per session, until confirmed with a code (ten minutes at most).

    Kept on the server: the key is shown once as a QR code and never travels in a cookie."""

    MAX_AGE = 10 * 60
    MAX_ITEMS = 1000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, float]] = {}

    def start(self, sid: str, secret: str) -> None:
        now = self.clock()
        with self._lock:
            for key in [k for k, (_, t) in self._items.items() if now - t > self.MAX_AGE]:
                del self._items[key]
            if len(self._items) >= self.MAX_ITEMS:
                del self._items[min(self._items, key=lambda k: self._items[k][1])]
            self._items[sid] = (secret, now)

    def secret(self, sid: str | None) -> str | None:
        with self._lock:
            secret, started = self._items.get(sid or "", (None, 0.0))
        return secret if secret and self.clock() - started <= self.MAX_AGE else None

    def finish(self, sid: str | None) -> None:
        with self._lock:
            self._items.pop(sid or "", None)


class TotpCodes:
    """Time-based one-time codes (RFC 6238 by pyotp: 6 digits, 30 s) with one step of clock drift either
    side; a code, once accepted, and every older one of the same user are refused (no replay)."""

    DRIFT_STEPS = 1
    MAX_USERS = 10000

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._last_step: dict[str, int] = {}

    @staticmethod
    def new_secret() -> str:
        return pyotp.random_base32()

    @staticmethod
    def normalize(code: str) -> str:
        return "".join(code.split())

    def accept(self, login: str, secret: str, code: str) -> bool:
        code = self.normalize(code)
        if not re.fullmatch(r"[0-9]{6}", code):
            return False
        totp = pyotp.TOTP(secret)
        now = self.clock()
        steps = [int(now // totp.interval) + d for d in range(-self.DRIFT_STEPS, self.DRIFT_STEPS + 1)]
        step = next((s for s in steps if hmac.compare_digest(totp.at(s * totp.interval), code)), None)
        if step is None:
            return False
        with self._lock:
            if step <= self._last_step.get(login, -1):
                return False  # replayed (or older than the last code used)
            if len(self._last_step) >= self.MAX_USERS:  # steps out of the drift window no longer matter
                self._last_step = {k: v for k, v in self._last_step.items() if v >= steps[0]}
            self._last_step[login] = step
        return True


class RecoveryCodes:
    """Ten one-time codes for a lost authenticator, shown once, kept as argon2 hashes (like passwords)."""

    COUNT = 10
    ALPHABET = SetupCode.ALPHABET
    LENGTH = 10

    @classmethod
    def issue(cls) -> tuple[list[str], list[str]]:
        """(codes to show as XXXXX-XXXXX, their hashes to store)."""
        codes = ["".join(secrets.choice(cls.ALPHABET) for _ in range(cls.LENGTH)) for _ in range(cls.COUNT)]
        return [f"{c[:5]}-{c[5:]}" for c in codes], [hash_password(c) for c in codes]

    @classmethod
    def looks_like_one(cls, code: str) -> bool:
        return len(SetupCode.normalize(code)) == cls.LENGTH

    @staticmethod
    def matching(hashes: list[str], code: str) -> str | None:
        """The stored hash this code matches, if any."""
        normalized = SetupCode.normalize(code)
        return next((h for h in hashes if verify_password(h, normalized)), None)


class KeptForms:
    """Forms sent after the session ended, kept so the admin can send them again once signed in (never
    lost typing). Each is kept for the address it came from, at most TTL seconds, taken once; secrets
    (password, passphrase, secret, key and PIN fields) and files are not kept, and neither is a form over MAX_BYTES."""

    TTL = 15 * 60
    MAX_FORMS = 200
    MAX_BYTES = 64 * 1024
    SECRET = re.compile(r"password|passphrase|secret|(^|_)(psk|pin)\d?($|_)", re.IGNORECASE)

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, str, str, list[tuple[str, str]], bool]] = {}

    def keep(self, address: str, path: str, fields: list[tuple[str, str]], had_files: bool) -> str | None:
        """A token for this form, or None when it cannot be kept (too large)."""
        kept = [(k, v) for k, v in fields if not self.SECRET.search(k)]
        if sum(len(k) + len(v) for k, v in kept) > self.MAX_BYTES:
            return None
        dropped = had_files or len(kept) < len(fields)
        token = secrets.token_urlsafe(24)
        now = self.clock()
        with self._lock:
            self._items = {t: item for t, item in self._items.items() if now - item[0] <= self.TTL}
            while len(self._items) >= self.MAX_FORMS:
                del self._items[min(self._items, key=lambda t: self._items[t][0])]
            self._items[token] = (now, address, path, kept, dropped)
        return token

    def take(self, token: str | None, address: str) -> tuple[str, list[tuple[str, str]], bool] | None:
        """(path, fields, some were not kept) of a live token from the same address, once."""
        if not token:
            return None
        with self._lock:
            item = self._items.get(token)
            if item is None or item[1] != address:
                return None
            del self._items[token]
        created, _, path, fields, dropped = item
        return (path, fields, dropped) if self.clock() - created <= self.TTL else None

    def alive(self, token: str | None, address: str) -> bool:
        with self._lock:
            item = self._items.get(token or "")
            return item is not None and item[1] == address and self.clock() - item[0] <= self.TTL
