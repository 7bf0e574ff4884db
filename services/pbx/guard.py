"""Abuse protection (like pike + fail2ban): ban sources that flood or fail authentication repeatedly.

The table of sources is bounded: when it is full, sources with nothing left in their windows go first,
then the least active half, so a flood of spoofed sources cannot wipe a real attacker's counts. The
caller counts an authentication failure only from a source that proved it receives our replies, and
`exempt` (addresses with a live registration, trunk peers) is never banned: forged packets cannot get a
colleague's phone or the carrier banned.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Source:
    requests: deque = field(default_factory=deque)
    failures: deque = field(default_factory=deque)


class Guard:
    MAX_TRACKED = 10000

    def __init__(self, max_auth_failures=10, failure_window=60, max_requests=300, request_window=5,
                 ban_seconds=600, trusted=(), exempt: Callable[[str], bool] = lambda ip: False) -> None:
        self.max_auth_failures = max_auth_failures
        self.failure_window = failure_window
        self.max_requests = max_requests
        self.request_window = request_window
        self.ban_seconds = ban_seconds
        self.trusted = set(trusted)
        self.exempt = exempt
        self.sources: dict[str, _Source] = {}
        self.banned: dict[str, float] = {}  # ip -> until (monotonic)
        self.bans_total = 0

    def configure(self, limits) -> None:
        for name in ("max_auth_failures", "failure_window", "max_requests", "request_window", "ban_seconds"):
            setattr(self, name, getattr(limits, name))
        self.trusted = set(limits.trusted)

    def is_banned(self, ip: str) -> bool:
        until = self.banned.get(ip)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self.banned[ip]
            return False
        return True

    def _source(self, ip: str) -> _Source:
        src = self.sources.get(ip)
        if src is None:
            if len(self.sources) >= self.MAX_TRACKED:
                self._make_room()
            src = self.sources[ip] = _Source()
        return src

    def _make_room(self) -> None:
        """Forget idle sources, then keep the most active half (failures first, then requests)."""
        now = time.monotonic()
        for src in self.sources.values():
            _trim(src.requests, now - self.request_window)
            _trim(src.failures, now - self.failure_window)
        self.sources = {ip: s for ip, s in self.sources.items() if s.requests or s.failures}
        if len(self.sources) > self.MAX_TRACKED // 2:
            ranked = sorted(self.sources.items(), key=lambda item: (len(item[1].failures), len(item[1].requests)),
                            reverse=True)
            self.sources = dict(ranked[:self.MAX_TRACKED // 2])

    def _count(self, ip: str, q: deque, window: float, limit: int) -> None:
        now = time.monotonic()
        q.append(now)
        _trim(q, now - window)
        if len(q) > limit and ip not in self.trusted and not self.exempt(ip):
            self._ban(ip, now)
            q.clear()

    def _ban(self, ip: str, now: float) -> None:
        if len(self.banned) >= self.MAX_TRACKED:
            self.banned = {b: until for b, until in self.banned.items() if until > now}
            if len(self.banned) >= self.MAX_TRACKED:
                del self.banned[min(self.banned, key=self.banned.__getitem__)]  # the one ending first
        self.banned[ip] = now + self.ban_seconds
        self.bans_total += 1

    def request(self, ip: str) -> bool:
        """Count one request; False if the source is (now) banned."""
        if self.is_banned(ip):
            return False
        src = self._source(ip)
        self._count(ip, src.requests, self.request_window, self.max_requests)
        return not self.is_banned(ip)

    def auth_failed(self, ip: str) -> None:
        """One failed authentication from a source that proved it receives our replies."""
        src = self._source(ip)
        self._count(ip, src.failures, self.failure_window, self.max_auth_failures - 1)

    def unban(self, ip: str) -> None:
        self.banned.pop(ip, None)

    def bans(self) -> list[dict]:
        now = time.monotonic()
        return [{"source": ip, "seconds_left": int(until - now)} for ip, until in self.banned.items() if until > now]


def _trim(q: deque, since: float) -> None:
    while q and q[0] < since:
        q.popleft()
