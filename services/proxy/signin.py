"""Proxy sign-in: the appliance checks the logins Squid's helper (basic_auth.py) passes on, against
the user directory's argon2 hashes (each user's proxy password, or their main password where the admin
chose so), on a Unix socket only the proxy user can use. A login with repeated failures is refused
without checking for a while; an unknown login costs the same argon2 check as a known one."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from appliance.users import hash_password, verify_password

log = logging.getLogger("officebox.proxy")
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0
MAX_LINE = 4096


_DUMMY_HASH = None


def _dummy_check(password: str) -> None:
    """An argon2 verification that always fails, so unknown logins take as long as known ones."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    verify_password(_DUMMY_HASH, password)


class SignInServer:
    def __init__(self, path: Path, users: Callable[[], list], clock: Callable[[], float] = time.monotonic,
                 use_login_password: Callable[[], bool] = lambda: False) -> None:
        self.path = Path(path)
        self.users = users  # the current directory (config.users)
        self.use_login_password = use_login_password
        self.clock = clock
        self.failures: dict[str, list[float]] = {}
        self.checked = self.refused = 0
        self._server: asyncio.AbstractServer | None = None
        self._verify = asyncio.Semaphore(4)  # argon2 is deliberately slow: bound the CPU it takes

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o600)
        if os.geteuid() == 0:
            proxy = pwd.getpwnam("proxy")
            os.chown(self.path, proxy.pw_uid, proxy.pw_gid)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            async with self._verify:
                ok = await asyncio.to_thread(self.check, line.decode("utf-8", "replace").strip())
            writer.write(b"OK\n" if ok else b"ERR\n")
            await writer.drain()
        except (TimeoutError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    def check(self, line: str) -> bool:
        """One helper line, "login password" (URL-escaped): True if that enabled user has that password."""
        login, _, password = line.partition(" ")
        login, password = unquote(login).strip().lower(), unquote(password)
        if not login or not password:
            return False
        now = self.clock()
        recent = [t for t in self.failures.get(login, []) if now - t < FAILURE_WINDOW]
        if len(recent) >= MAX_FAILURES:
            self.refused += 1
            return False
        self.checked += 1
        user = next((u for u in self.users() if u.login == login and u.enabled), None)
        if user is None:
            _dummy_check(password)
        elif user.check_password(password) if self.use_login_password() else user.check_proxy_password(password):
            self.failures.pop(login, None)
            return True
        recent.append(now)
        self.failures[login] = recent
        if len(self.failures) > 10000:  # forget the oldest
            for key in sorted(self.failures, key=lambda k: self.failures[k][-1])[:1000]:
                del self.failures[key]
        log.info("proxy sign-in refused for %r", login[:64])
        return False
