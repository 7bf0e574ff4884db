"""The Unix socket Dovecot's checkpassword helper asks (checkpassword.py): one JSON line in, one answer
out ("ok <login>", "no", "busy"). Checks go through the same AuthGuard as SMTP AUTH (throttling per
address and login across protocols, argon2 on its bounded pool, no timing oracle). Only Dovecot's auth
user (and root) may connect."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
from pathlib import Path
from typing import TYPE_CHECKING

from services.mail.authguard import SignInRefused

if TYPE_CHECKING:
    from services.mail.service import MailService

log = logging.getLogger("officebox.mail.auth")
MAX_LINE = 4096
AUTH_USER = "dovecot"  # Dovecot's default_internal_user: its auth process runs the helper


class AuthSocket:
    owner = AUTH_USER  # the only user (besides root) that may connect
    limit = MAX_LINE

    def __init__(self, service: "MailService", path: Path) -> None:
        self.service = service
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=self.limit)
        os.chmod(self.path, 0o600)
        if os.geteuid() == 0:
            os.chown(self.path, pwd.getpwnam(self.owner).pw_uid, 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._clients.add(task)
        try:
            writer.write((await self.serve(reader)).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, EOFError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()

    async def serve(self, reader: asyncio.StreamReader) -> str:
        return await self.answer(await asyncio.wait_for(reader.readline(), 10))

    async def answer(self, line: bytes) -> str:
        try:
            request = json.loads(line)
            user, password, ip = str(request["user"]), str(request["password"]), str(request["ip"])[:64]
        except (ValueError, KeyError, TypeError):
            return "no"
        service = self.service
        try:
            found = await service.auth.check(service.section, service.directory, ip, user, password)
        except SignInRefused:
            return "busy"
        if found is None:
            return "no"
        with contextlib.suppress(KeyError, TypeError, ValueError):
            service.gate.signed_in(ip, int(request["port"]), int(request["local_port"]))
        return f"ok {found.login}"
