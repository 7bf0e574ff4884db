"""Common plumbing for the POP3 and IMAP servers: line reading with limits, STARTTLS, password checks."""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.users import User
    from services.mail.service import MailService

log = logging.getLogger("officebox.mail")


class LineTooLong(Exception):
    pass


class LineSession:
    """One client connection speaking a line-based protocol."""

    max_line = 8192
    idle_timeout = 600.0

    def __init__(self, service: "MailService", reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 implicit_tls: bool) -> None:
        self.service = service
        self.reader = reader
        self.writer = writer
        self.secure = implicit_tls
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        sock = writer.get_extra_info("socket")
        if sock is not None:  # replies are complete writes: no Nagle delay against delayed ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def read_line(self) -> bytes | None:
        """One line without its CRLF; None at end of stream; LineTooLong if over the limit."""
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), self.idle_timeout)
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            await self._discard_line()
            raise LineTooLong() from None
        if len(line) > self.max_line:
            raise LineTooLong()
        return line.rstrip(b"\r\n")

    async def _discard_line(self) -> None:
        while True:
            try:
                await self.reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self.reader.readexactly(exc.consumed)
            except asyncio.IncompleteReadError:
                return

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.writer.write(data)
        await self.writer.drain()

    async def start_tls(self) -> None:
        # anything the client pipelined after the command was sent in clear: never treat it as TLS data
        self.reader._buffer.clear()  # noqa: SLF001 (same guard as aiosmtpd, RFC 3207 4.2)
        await self.writer.start_tls(self.service.tls)
        self.secure = True

    async def check_password(self, username: str, password: str) -> "User | None":
        """See AuthGuard.check; raises SignInRefused (throttled or busy)."""
        service = self.service
        return await service.auth.check(service.section, service.directory, self.peer, username, password)

    async def close(self) -> None:
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (TimeoutError, OSError, ConnectionError):
            pass
