"""Password checks for SMTP AUTH, POP3 and IMAP: failure throttling across connections and protocols (per
source address and per login), and argon2 on its own small thread pool with a bounded waiting line, so a
brute force can neither guess fast nor take the worker threads that delivery needs."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.users import User
    from services.mail.config import MailConfig
    from services.mail.directory import Directory

log = logging.getLogger("officebox.mail.auth")
FAILED_LOGIN_DELAY = 0.5
MAX_TRACKED = 4096  # addresses / logins remembered; the oldest are forgotten first
MAX_COUNTED = 100  # failures remembered per address / login (the limits are at most this)
TRUSTED_SECONDS = 86400  # a (login, address) pair that signed in is not hit by that login's throttle
WORKERS = max(1, min(2, (os.cpu_count() or 2) // 2))  # the rest of the box keeps its cores
MAX_WAITING = 16  # checks queued for the pool; more are refused at once ("busy")


REFUSALS = {"throttled": "too many failed sign-ins, try again later",
            "busy": "too many sign-ins in progress, try again in a moment"}


class SignInRefused(Exception):
    """Not checked at all: too many failures (throttled) or too many checks waiting (busy)."""

    def __init__(self, reason: str) -> None:
        super().__init__(REFUSALS[reason])
        self.reason = reason


def _note(table: dict, key, value) -> None:
    table.pop(key, None)
    table[key] = value
    while len(table) > MAX_TRACKED:
        table.pop(next(iter(table)))


class AuthGuard:
    def __init__(self) -> None:
        self.failures_by_ip: dict[str, deque[float]] = {}
        self.failures_by_login: dict[str, deque[float]] = {}
        self.trusted: dict[tuple[str, str], float] = {}
        self.pool: ThreadPoolExecutor | None = None
        self.pending = 0
        self.peak_pending = 0  # most checks running or waiting at once (status figure)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    @staticmethod
    def _recent(table: dict[str, deque[float]], key: str, window: float, now: float) -> int:
        times = table.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - window:
            times.popleft()
        if not times:
            del table[key]
        return len(times)

    def throttled(self, section: "MailConfig", ip: str, login: str) -> bool:
        now, window = time.monotonic(), section.auth_block_seconds
        if self._recent(self.failures_by_ip, ip, window, now) >= section.auth_failures_per_ip:
            return True
        if self.trusted.get((login, ip), -TRUSTED_SECONDS) > now - TRUSTED_SECONDS:
            return False  # the owner's usual device is not locked out by someone else's guessing
        return self._recent(self.failures_by_login, login, window, now) >= section.auth_failures_per_login

    def _failed(self, ip: str, login: str) -> None:
        now = time.monotonic()
        for table, key in ((self.failures_by_ip, ip), (self.failures_by_login, login)):
            times = table.get(key) or deque(maxlen=MAX_COUNTED)
            times.append(now)
            _note(table, key, times)

    async def check(self, section: "MailConfig", directory: "Directory", ip: str, username: str,
                    password: str) -> "User | None":
        """The user if the password is right, None if not (after a short delay); SignInRefused when the
        address or login is throttled or the pool is saturated."""
        login = directory.login_of(username)[:254]
        if self.throttled(section, ip, login):
            log.info("sign-in for %r from %s refused: too many failures", login[:64], ip)
            raise SignInRefused("throttled")
        if self.pending >= WORKERS + MAX_WAITING:
            raise SignInRefused("busy")
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mail-auth")
        self.pending += 1
        self.peak_pending = max(self.peak_pending, self.pending)
        try:
            user = await asyncio.get_running_loop().run_in_executor(self.pool, directory.authenticate,
                                                                    username, password)
        finally:
            self.pending -= 1
        if user is None:
            log.info("sign-in failed for %r from %s", login[:64], ip)
            self._failed(ip, login)
            await asyncio.sleep(FAILED_LOGIN_DELAY)
            return None
        _note(self.trusted, (login, ip), time.monotonic())
        return user
