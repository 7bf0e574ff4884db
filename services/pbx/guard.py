"""Abuse protection (like pike + fail2ban): ban sources that flood or fail authentication repeatedly."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Source:
    requests: deque = field(default_factory=deque)
    failures: deque = field(default_factory=deque)


class Guard:
    MAX_TRACKED = 10000

    def __init__(self, max_auth_failures=10, failure_window=60, max_requests=300, request_window=5,
                 ban_seconds=600, trusted=()) -> None:
        self.max_auth_failures = max_auth_failures
        self.failure_window = failure_window
        self.max_requests = max_requests
        self.request_window = request_window
        self.ban_seconds = ban_seconds
        self.trusted = set(trusted)
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
                self.sources.clear()
            src = self.sources[ip] = _Source()
        return src

    def _count(self, ip: str, q: deque, window: float, limit: int) -> None:
        now = time.monotonic()
        q.append(now)
        while q and now - q[0] > window:
            q.popleft()
        if len(q) > limit and ip not in self.trusted:
            self.banned[ip] = now + self.ban_seconds
            self.bans_total += 1
            q.clear()

    def request(self, ip: str) -> bool:
        """Count one request; False if the source is (now) banned."""
        if self.is_banned(ip):
            return False
        src = self._source(ip)
        self._count(ip, src.requests, self.request_window, self.max_requests)
        return not self.is_banned(ip)

    def auth_failed(self, ip: str) -> None:
        src = self._source(ip)
        self._count(ip, src.failures, self.failure_window, self.max_auth_failures - 1)

    def unban(self, ip: str) -> None:
        self.banned.pop(ip, None)

    def bans(self) -> list[dict]:
        now = time.monotonic()
        return [{"source": ip, "seconds_left": int(until - now)} for ip, until in self.banned.items() if until > now]
