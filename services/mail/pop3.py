"""POP3 server (RFC 1939, CAPA from RFC 2449, STLS from RFC 2595) on the users' Maildirs.

Passwords only over TLS (STLS or port 995). The maildrop is locked for the session; DELE takes effect at
QUIT only. APOP is not offered: it needs the clear-text password, and we keep argon2 hashes only.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

from services.mail.authguard import SignInRefused
from services.mail.lineserver import LineSession, LineTooLong
from services.mail.maildir import Entry, read_message

if TYPE_CHECKING:
    from services.mail.service import MailService

log = logging.getLogger("officebox.mail.pop3")
MAX_COMMAND = 255  # RFC 2449: a command line is at most 255 octets
MAX_ERRORS = 10
TOO_MANY = b"-ERR [SYS/TEMP] too many connections, try again later\r\n"


def _uidl(entry: Entry) -> str:
    return entry.base if len(entry.base) <= 70 else hashlib.sha1(entry.base.encode()).hexdigest()


class Pop3Session(LineSession):
    max_line = MAX_COMMAND + 2

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.user_arg: str | None = None
        self.login: str | None = None
        self.lock: asyncio.Lock | None = None
        self.messages: list[Entry] = []
        self.deleted: set[int] = set()

    async def run(self) -> None:
        await self.send(f"+OK {self.service.fqdn} POP3 server ready\r\n")
        errors = 0
        try:
            while errors < MAX_ERRORS:
                try:
                    line = await self.read_line()
                except LineTooLong:
                    errors += 1
                    await self.send("-ERR command line too long\r\n")
                    continue
                if line is None:
                    return
                try:
                    text = line.decode("ascii")
                except UnicodeDecodeError:
                    errors += 1
                    await self.send("-ERR commands must be ASCII\r\n")
                    continue
                verb, _, arg = text.partition(" ")
                handler = getattr(self, f"cmd_{verb.upper()}", None) if verb.isalpha() else None
                if handler is None:
                    errors += 1
                    await self.send("-ERR unknown command\r\n")
                    continue
                if await handler(arg) is False:
                    return
            await self.send("-ERR too many errors, closing\r\n")
        except (TimeoutError, OSError):  # idle, reset, TLS failure
            return
        finally:
            if self.lock is not None and self.lock.locked():
                self.lock.release()
            await self.close()

    # -- helpers -------------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return self.login is not None

    async def _msg(self, arg: str) -> Entry | None:
        """The message numbered `arg` if it exists and is not deleted; sends -ERR otherwise."""
        if not self.in_transaction:
            await self.send("-ERR not logged in\r\n")
            return None
        if not arg.isdigit() or not 1 <= int(arg) <= len(self.messages):
            await self.send("-ERR no such message\r\n")
            return None
        if int(arg) - 1 in self.deleted:
            await self.send("-ERR message is deleted\r\n")
            return None
        return self.messages[int(arg) - 1]

    def _read(self, entry: Entry) -> bytes | None:
        """The message in CRLF form; looked up again if another session renamed it (flags changed)."""
        return read_message(self.service.maildir(self.login), entry)

    async def _send_multiline(self, status: str, data: bytes) -> None:
        """Status line, then the data byte-stuffed and terminated, in one write."""
        lines = data.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in lines)
        await self.send(status.encode() + stuffed + (b"\r\n" if lines else b"") + b".\r\n")

    # -- AUTHORIZATION state -------------------------------------------------------------------
    async def cmd_CAPA(self, arg: str) -> None:
        caps = ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"]
        if not self.secure:
            caps.append("STLS")
        else:
            caps.append("USER")
        await self.send("+OK capability list follows\r\n" + "".join(c + "\r\n" for c in caps) + ".\r\n")

    async def cmd_STLS(self, arg: str) -> None:
        if self.secure:
            await self.send("-ERR already using TLS\r\n")
            return
        if self.in_transaction:
            await self.send("-ERR STLS only before logging in\r\n")
            return
        await self.send("+OK begin TLS negotiation\r\n")
        await self.start_tls()

    async def cmd_USER(self, arg: str) -> None:
        if self.in_transaction:
            await self.send("-ERR already logged in\r\n")
        elif not self.secure:
            await self.send("-ERR [AUTH] use STLS first: passwords are not sent in clear\r\n")
        elif not arg or " " in arg.strip():
            await self.send("-ERR USER needs one user name\r\n")
        else:
            self.user_arg = arg.strip()
            await self.send("+OK send your password\r\n")

    async def cmd_PASS(self, arg: str) -> None:
        if self.in_transaction:
            await self.send("-ERR already logged in\r\n")
            return
        if not self.secure:
            await self.send("-ERR [AUTH] use STLS first: passwords are not sent in clear\r\n")
            return
        if self.user_arg is None:
            await self.send("-ERR send USER first\r\n")
            return
        username, self.user_arg = self.user_arg, None
        try:
            user = await self.check_password(username, arg)
        except SignInRefused as exc:
            await self.send(f"-ERR [SYS/TEMP] {exc}\r\n")
            return
        if user is None:
            await self.send("-ERR [AUTH] invalid user name or password\r\n")
            return
        lock = self.service.mailbox_lock(user.login)
        if lock.locked():
            await self.send("-ERR [IN-USE] the mailbox is open in another session\r\n")
            return
        await lock.acquire()
        self.lock = lock
        self.login = user.login
        self.messages = await asyncio.to_thread(self.service.maildir(user.login).scan)
        await self.send(f"+OK {user.login} has {len(self.messages)} message(s)\r\n")

    async def cmd_QUIT(self, arg: str) -> bool:
        if not self.in_transaction:
            await self.send("+OK bye\r\n")
            return False
        maildir = self.service.maildir(self.login)
        failed = 0
        for index in sorted(self.deleted):
            entry = self.messages[index]
            if not maildir.remove(entry):
                renamed = [e for e in maildir.scan() if e.base == entry.base]
                failed += not any(maildir.remove(e) for e in renamed) and bool(renamed)
        if failed:
            await self.send(f"-ERR {failed} message(s) could not be deleted\r\n")
        else:
            await self.send(f"+OK bye ({len(self.deleted)} message(s) deleted)\r\n")
        return False

    # -- TRANSACTION state ---------------------------------------------------------------------
    async def cmd_STAT(self, arg: str) -> None:
        if not self.in_transaction:
            await self.send("-ERR not logged in\r\n")
            return
        live = [m for i, m in enumerate(self.messages) if i not in self.deleted]
        await self.send(f"+OK {len(live)} {sum(m.size for m in live)}\r\n")

    async def _listing(self, arg: str, value) -> None:
        if arg:
            entry = await self._msg(arg.strip())
            if entry is not None:
                await self.send(f"+OK {int(arg)} {value(entry)}\r\n")
            return
        if not self.in_transaction:
            await self.send("-ERR not logged in\r\n")
            return
        lines = "".join(f"{i + 1} {value(m)}\r\n" for i, m in enumerate(self.messages) if i not in self.deleted)
        await self.send("+OK listing follows\r\n" + lines + ".\r\n")

    async def cmd_LIST(self, arg: str) -> None:
        await self._listing(arg, lambda m: m.size)

    async def cmd_UIDL(self, arg: str) -> None:
        await self._listing(arg, _uidl)

    async def _message(self, arg: str) -> bytes | None:
        """The content of message `arg`, or None once the client has been told why not."""
        entry = await self._msg(arg)
        if entry is None:
            return None
        data = await asyncio.to_thread(self._read, entry)
        if data is None:
            await self.send("-ERR message was removed by another session\r\n")
        return data

    async def cmd_RETR(self, arg: str) -> None:
        data = await self._message(arg.strip())
        if data is None:
            return
        await self._send_multiline(f"+OK {len(data)} octets\r\n", data)

    async def cmd_TOP(self, arg: str) -> None:
        parts = arg.split()
        if len(parts) != 2 or not parts[1].isdigit():
            await self.send("-ERR usage: TOP msg lines\r\n")
            return
        data = await self._message(parts[0])
        if data is None:
            return
        head, sep, body = data.partition(b"\r\n\r\n")
        body_lines = body.split(b"\r\n")[: int(parts[1])] if sep else []
        top = head + b"\r\n\r\n" + b"\r\n".join(body_lines) + b"\r\n"
        await self._send_multiline("+OK top of message follows\r\n", top)

    async def cmd_DELE(self, arg: str) -> None:
        entry = await self._msg(arg.strip())
        if entry is not None:
            self.deleted.add(int(arg) - 1)
            await self.send(f"+OK message {int(arg)} deleted\r\n")

    async def cmd_RSET(self, arg: str) -> None:
        if not self.in_transaction:
            await self.send("-ERR not logged in\r\n")
            return
        self.deleted.clear()
        await self.send(f"+OK {len(self.messages)} message(s)\r\n")

    async def cmd_NOOP(self, arg: str) -> None:
        await self.send("+OK\r\n" if self.in_transaction else "-ERR not logged in\r\n")


async def start_pop3(service: "MailService", host: str, port: int, implicit_tls: bool) -> asyncio.AbstractServer:
    async def client(reader, writer):
        await service.serve("pop3s" if implicit_tls else "pop3", writer, TOO_MANY,
                            lambda: Pop3Session(service, reader, writer, implicit_tls))

    return await asyncio.start_server(client, host, port, ssl=service.tls if implicit_tls else None,
                                      reuse_address=True, limit=64 * 1024)
