"""IMAP4rev1 server (RFC 3501) on the users' Maildirs: the core, selected-state commands and SEARCH.

LOGIN and AUTHENTICATE PLAIN (RFC 4616, with SASL-IR, RFC 4959) only over TLS (STARTTLS or port 993).
Also LITERAL+, IDLE (RFC 2177), MOVE (RFC 6851) and special-use folder attributes (RFC 6154). FETCH is in
imapfetch.py, folders in imapfolders.py. Not offered: other SASL mechanisms, keywords, folder hierarchy,
QRESYNC/CONDSTORE.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import TYPE_CHECKING

from services.mail.authguard import SignInRefused
from services.mail.imapfetch import FetchCommands
from services.mail.imapfolders import FolderCommands, letters_of
from services.mail.imapwire import (
    LITERAL_AT_END,
    Bad,
    No,
    ParseError,
    header_value,
    parse_set,
    quote,
    split_message,
    tokenize,
)
from services.mail.lineserver import LineSession, LineTooLong
from services.mail.maildir import Entry, Maildir, read_message

if TYPE_CHECKING:
    from services.mail.service import MailService

log = logging.getLogger("officebox.mail.imap")
MAX_LITERAL = 64 * 1024  # before login
MAX_LITERALS = 8  # per command
DISCARD_FACTOR = 4  # a refused {n+} literal up to 4x the limit is read and dropped; bigger closes
MAX_ERRORS = 20
TOO_MANY = b"* BYE [UNAVAILABLE] too many connections, try again later\r\n"
SYSTEM_FLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"
FLAG_SEARCH = {"SEEN": ("S", True), "UNSEEN": ("S", False), "NEW": ("S", False), "OLD": None,
               "DELETED": ("T", True), "UNDELETED": ("T", False), "FLAGGED": ("F", True),
               "UNFLAGGED": ("F", False), "ANSWERED": ("R", True), "UNANSWERED": ("R", False),
               "DRAFT": ("D", True), "UNDRAFT": ("D", False)}


def valid_tag(tag: str) -> bool:
    return bool(tag) and tag.isprintable() and not any(c in tag for c in '(){%*"\\+ ')


CAPABILITIES = "IMAP4rev1 LITERAL+ IDLE MOVE SPECIAL-USE"
IDLE_POLL = 5.0
class LiteralRefused(Exception):
    """A literal over the limit: the command gets a tagged NO, nothing of it runs."""

    def __init__(self, line: bytes, limit: int) -> None:
        super().__init__(f"[TOOBIG] literal too large (at most {limit} bytes here)")
        self.tag = line.partition(b" ")[0].decode("ascii", "replace")


class LiteralOverflow(Exception):
    """A {n+} literal too big to drop or too many literals: the connection is closed."""


class ImapSession(FolderCommands, FetchCommands, LineSession):
    idle_timeout = 1800.0  # RFC 3501 5.4: at least 30 minutes

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.login: str | None = None
        self.maildir: Maildir | None = None
        self.readonly = False
        self.uids: list[int] = []  # sequence number - 1 -> uid
        self.entries: dict[int, Entry] = {}
        self.validity = 0
        self.next_uid = 1
        self.selected: str | None = None
        self.literals: list[bytes] = []

    async def run(self) -> None:
        await self.send(f"* OK [CAPABILITY {self._capabilities()}] {self.service.fqdn} IMAP4rev1 ready\r\n")
        errors = 0
        try:
            while errors < MAX_ERRORS:
                try:
                    line = await self._read_command()
                except LineTooLong:
                    errors += 1
                    await self.send("* BAD command line too long\r\n")
                    continue
                except ParseError as exc:
                    errors += 1
                    await self.send(f"* BAD {exc}\r\n")
                    continue
                except LiteralRefused as exc:
                    errors += 1
                    tag = exc.tag if valid_tag(exc.tag) else "*"
                    await self.send(f"{tag} NO {exc}\r\n")
                    continue
                except LiteralOverflow:
                    await self.send("* BYE literal too large, closing the connection\r\n")
                    return
                if line is None:
                    return
                tag, _, rest = line.partition(b" ")
                tag_text = tag.decode("ascii", "replace")
                if not valid_tag(tag_text):
                    errors += 1
                    await self.send("* BAD invalid tag\r\n")
                    continue
                verb, _, args = rest.partition(b" ")
                name = verb.decode("ascii", "replace").upper()
                if name == "UID":
                    sub, _, args = args.partition(b" ")
                    name = "UID_" + sub.decode("ascii", "replace").upper()
                handler = getattr(self, f"cmd_{name}", None) if name.replace("_", "").isalpha() else None
                try:
                    if handler is None:
                        raise Bad("unknown command")
                    try:
                        parsed = tokenize(args, self.literals)
                    except ParseError as exc:
                        raise Bad(str(exc)) from None
                    result = await handler(tag_text, parsed)
                except Bad as exc:
                    errors += 1
                    await self.send(f"{tag_text} BAD {exc}\r\n")
                    continue
                except No as exc:
                    await self.send(f"{tag_text} NO {exc}\r\n")
                    continue
                if result is False:
                    return
        except (TimeoutError, OSError):  # idle, reset, TLS failure
            return
        finally:
            await self.close()

    async def _read_command(self) -> bytes | None:
        """A command line with its literals ({n} / {n+}) collected. A refused literal is never read as
        commands: a {n} one is not invited, a {n+} one (sent unasked) is read and dropped, or the
        connection closes when it is too big even for that (LiteralOverflow)."""
        line = await self.read_line()
        if line is None:
            return None
        literals: list[bytes] = []
        refused = False
        limit = self.service.section.max_message_size if self.login else MAX_LITERAL
        while (match := LITERAL_AT_END.search(line)) is not None:
            size, unasked = int(match[1]), bool(match[2])
            too_big = size > limit
            if too_big and not unasked:
                raise LiteralRefused(line, limit)
            if len(literals) >= MAX_LITERALS or (too_big and (self.login is None or size > DISCARD_FACTOR * limit)):
                raise LiteralOverflow()
            if not unasked:
                await self.send("+ ready for literal data\r\n")
            try:
                data = await self._discard(size) if too_big else await asyncio.wait_for(
                    self.reader.readexactly(size), self.idle_timeout)
            except asyncio.IncompleteReadError:
                return None
            refused = refused or too_big
            line = line[:match.start()] + b"\x00%04d" % len(literals)
            literals.append(data)
            more = await self.read_line()
            if more is None:
                return None
            line += more
        if refused:
            raise LiteralRefused(line, limit)
        self.literals = literals
        return line

    async def _discard(self, size: int) -> bytes:
        while size > 0:
            chunk = await asyncio.wait_for(self.reader.read(min(size, 65536)), self.idle_timeout)
            if not chunk:
                raise asyncio.IncompleteReadError(b"", size)
            size -= len(chunk)
        return b""

    # -- any state -----------------------------------------------------------------------------
    def _capabilities(self) -> str:
        return CAPABILITIES + (" AUTH=PLAIN SASL-IR" if self.secure else " STARTTLS LOGINDISABLED")

    async def cmd_CAPABILITY(self, tag: str, args: list) -> None:
        await self.send(f"* CAPABILITY {self._capabilities()}\r\n{tag} OK CAPABILITY completed\r\n")

    async def cmd_NOOP(self, tag: str, args: list) -> None:
        if self.maildir is not None:
            await self._sync(report_expunges=True)
        await self.send(f"{tag} OK NOOP completed\r\n")

    cmd_CHECK = cmd_NOOP

    async def cmd_LOGOUT(self, tag: str, args: list) -> bool:
        await self.send(f"* BYE logging out\r\n{tag} OK LOGOUT completed\r\n")
        return False

    # -- not authenticated ---------------------------------------------------------------------
    async def cmd_STARTTLS(self, tag: str, args: list) -> None:
        if self.secure:
            raise Bad("TLS is already active")
        await self.send(f"{tag} OK begin TLS negotiation now\r\n")
        await self.start_tls()

    def _may_sign_in(self) -> None:
        if self.login is not None:
            raise Bad("already logged in")
        if not self.secure:
            raise No("[PRIVACYREQUIRED] use STARTTLS first: passwords are not sent in clear")

    async def _sign_in(self, tag: str, username: str, password: str) -> None:
        try:
            user = await self.check_password(username, password)
        except SignInRefused as exc:
            raise No(f"[UNAVAILABLE] {exc}") from None
        if user is None:
            raise No("[AUTHENTICATIONFAILED] invalid user name or password")
        self.login = user.login
        await self.send(f"{tag} OK [CAPABILITY {self._capabilities()}] logged in\r\n")

    async def cmd_LOGIN(self, tag: str, args: list) -> None:
        self._may_sign_in()
        if len(args) != 2 or not all(isinstance(a, (str, bytes)) for a in args):
            raise Bad("usage: LOGIN user password")
        username, password = (a.decode("utf-8", "replace") if isinstance(a, bytes) else a for a in args)
        await self._sign_in(tag, username, password)

    async def cmd_AUTHENTICATE(self, tag: str, args: list) -> bool | None:
        self._may_sign_in()
        if not args or not isinstance(args[0], str) or args[0].upper() != "PLAIN" or len(args) > 2:
            raise No("only AUTHENTICATE PLAIN is offered")
        if len(args) == 2:  # SASL-IR: the response on the command line
            response = args[1] if isinstance(args[1], str) else ""
        else:
            await self.send("+ \r\n")
            line = await self.read_line()
            if line is None:
                return False
            response = line.decode("ascii", "replace").strip()
        if response == "*":
            raise Bad("authentication cancelled")
        try:
            authzid, authcid, password = base64.b64decode("" if response == "=" else response,
                                                          validate=True).split(b"\0")
        except (binascii.Error, ValueError):
            raise Bad("malformed PLAIN response") from None
        if authzid and authzid != authcid:
            raise No("[AUTHORIZATIONFAILED] signing in as another user is not allowed")
        await self._sign_in(tag, authcid.decode("utf-8", "replace"), password.decode("utf-8", "replace"))
        return None

    # -- authenticated -------------------------------------------------------------------------
    def _need_login(self) -> None:
        if self.login is None:
            raise Bad("log in first")

    async def _open(self, tag: str, args: list, readonly: bool) -> None:
        self._need_login()
        self.maildir = None  # a failed SELECT leaves no mailbox selected
        name = self._name(args)
        maildir = self._mailbox(name)
        await asyncio.to_thread(maildir.ensure)
        self.maildir, self.selected = maildir, name
        self.readonly = readonly
        self.uids, self.entries = [], {}
        await self._sync(report_expunges=False, announce=False)
        unseen = [i + 1 for i, uid in enumerate(self.uids) if "S" not in self.entries[uid].flags]
        lines = [f"* FLAGS ({SYSTEM_FLAGS})", f"* {len(self.uids)} EXISTS", "* 0 RECENT",
                 f"* OK [UIDVALIDITY {self.validity}] UIDs valid", f"* OK [UIDNEXT {self.next_uid}] next UID",
                 f"* OK [PERMANENTFLAGS ({'' if readonly else SYSTEM_FLAGS})] flags"]
        if unseen:
            lines.append(f"* OK [UNSEEN {unseen[0]}] first unseen")
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        await self.send("\r\n".join(lines) + f"\r\n{tag} OK [{mode}] opened\r\n")

    async def cmd_SELECT(self, tag: str, args: list) -> None:
        await self._open(tag, args, readonly=False)

    async def cmd_EXAMINE(self, tag: str, args: list) -> None:
        await self._open(tag, args, readonly=True)

    # -- selected ------------------------------------------------------------------------------
    def _need_selected(self) -> None:
        self._need_login()
        if self.maildir is None:
            raise Bad("select a mailbox first")

    async def _sync(self, report_expunges: bool, announce: bool = True) -> None:
        """Catch up with the Maildir: new messages (EXISTS) and, when allowed, vanished ones (EXPUNGE)."""
        async with self.service.mailbox_lock(f"imap:{self.maildir.root}"):
            scanned = await asyncio.to_thread(self.maildir.scan)
            self.validity, self.next_uid, uids = await asyncio.to_thread(self.maildir.assign_uids, scanned)
        by_uid = {uids[e.base]: e for e in scanned}
        out = []
        if report_expunges or not announce:
            for seq in range(len(self.uids), 0, -1):
                if self.uids[seq - 1] not in by_uid:
                    del self.uids[seq - 1]
                    if announce:
                        out.append(f"* {seq} EXPUNGE\r\n")
        known = set(self.uids)
        new = sorted(uid for uid in by_uid if uid not in known and uid > max(known, default=0))
        self.uids += new
        for uid in self.uids:
            if uid in by_uid:
                self.entries[uid] = by_uid[uid]
        if new and announce:
            out.append(f"* {len(self.uids)} EXISTS\r\n")
        if out:
            await self.send("".join(out))

    def _targets(self, spec: object, by_uid: bool) -> list[int]:
        """Sequence numbers (1-based) named by a sequence set or a UID set."""
        if not isinstance(spec, str):
            raise Bad("invalid sequence set")
        if by_uid:
            wanted = parse_set(spec, self.uids[-1] if self.uids else 0)
            if wanted is None:
                raise Bad("invalid UID set")
            return [i + 1 for i, uid in enumerate(self.uids) if uid in wanted]
        wanted = parse_set(spec, len(self.uids))
        if wanted is None:
            raise Bad("invalid sequence set")
        if wanted and (max(wanted) > len(self.uids)):
            raise Bad("no such message")
        return sorted(wanted)

    async def cmd_CLOSE(self, tag: str, args: list) -> None:
        self._need_selected()
        if not self.readonly:
            await self._expunge(silent=True)
        self.maildir = None
        await self.send(f"{tag} OK CLOSE completed\r\n")

    async def cmd_UNSELECT(self, tag: str, args: list) -> None:
        self._need_selected()
        self.maildir = None
        await self.send(f"{tag} OK UNSELECT completed\r\n")

    async def cmd_EXPUNGE(self, tag: str, args: list) -> None:
        self._need_selected()
        if self.readonly:
            raise No("the mailbox is read-only")
        await self._expunge(silent=False)
        await self.send(f"{tag} OK EXPUNGE completed\r\n")

    async def _expunge(self, silent: bool) -> None:
        out = []
        for seq in range(len(self.uids), 0, -1):
            entry = self.entries.get(self.uids[seq - 1])
            if entry is not None and "T" in entry.flags:
                await asyncio.to_thread(self.maildir.remove, entry)
                del self.entries[self.uids[seq - 1]]
                del self.uids[seq - 1]
                out.append(f"* {seq} EXPUNGE\r\n")
        if out and not silent:
            await self.send("".join(out))

    async def cmd_STORE(self, tag: str, args: list, by_uid: bool = False) -> None:
        self._need_selected()
        if self.readonly:
            raise No("the mailbox is read-only")
        if len(args) != 3 or not isinstance(args[1], str):
            raise Bad("usage: STORE set [+|-]FLAGS[.SILENT] (flags)")
        mode = args[1].upper()
        silent = mode.endswith(".SILENT")
        mode = mode.removesuffix(".SILENT")
        if mode not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise Bad("unknown STORE item")
        flags = args[2] if isinstance(args[2], list) else [args[2]]
        letters = letters_of(flags)
        out = []
        for seq in self._targets(args[0], by_uid):
            uid = self.uids[seq - 1]
            entry = self.entries[uid]
            current = set(entry.flags)
            new = set(letters) if mode == "FLAGS" else (current | set(letters) if mode == "+FLAGS"
                                                        else current - set(letters))
            try:
                entry = await asyncio.to_thread(self.maildir.set_flags, entry, "".join(new))
            except FileNotFoundError:
                continue  # removed by another session; reported at the next NOOP
            self.entries[uid] = entry
            if not silent:
                uid_part = f"UID {uid} " if by_uid else ""
                out.append(f"* {seq} FETCH ({uid_part}FLAGS ({' '.join(entry.imap_flags())}))\r\n")
        await self.send("".join(out) + f"{tag} OK STORE completed\r\n")

    async def cmd_SEARCH(self, tag: str, args: list, by_uid: bool = False) -> None:
        self._need_selected()
        if len(args) >= 2 and isinstance(args[0], str) and args[0].upper() == "CHARSET":
            args = args[2:]
        keys = list(args) or ["ALL"]
        found = []
        for seq, uid in enumerate(self.uids, 1):
            entry = self.entries[uid]
            cursor = iter(keys)
            matched = True
            for key in cursor:
                if not await self._match(key, cursor, seq, uid, entry):
                    matched = False
            if matched:
                found.append(uid if by_uid else seq)
        await self.send(f"* SEARCH{''.join(f' {n}' for n in found)}\r\n{tag} OK SEARCH completed\r\n")

    async def _match(self, key, cursor, seq: int, uid: int, entry: Entry) -> bool:
        def arg():
            value = next(cursor, None)
            if value is None:
                raise Bad("search key needs an argument")
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

        if isinstance(key, list):
            sub = iter(key)
            results = [await self._match(k, sub, seq, uid, entry) for k in sub]
            return all(results)
        if not isinstance(key, str):
            raise Bad("invalid search key")
        word = key.upper()
        if word == "ALL":
            return True
        if word in ("RECENT", "OLD"):
            return word == "OLD"
        if word in FLAG_SEARCH:
            letter, present = FLAG_SEARCH[word]
            return (letter in entry.flags) == present
        if word == "NOT":
            return not await self._match(next(cursor, "ALL"), cursor, seq, uid, entry)
        if word == "OR":
            first = await self._match(arg(), cursor, seq, uid, entry)
            second = await self._match(arg(), cursor, seq, uid, entry)
            return first or second
        if word == "UID":
            wanted = parse_set(arg(), self.uids[-1] if self.uids else 0)
            if wanted is None:
                raise Bad("invalid UID set")
            return uid in wanted
        if word in ("LARGER", "SMALLER"):
            value = arg()
            if not value.isdigit():
                raise Bad("size must be a number")
            return entry.size > int(value) if word == "LARGER" else entry.size < int(value)
        if word in ("SUBJECT", "FROM", "TO", "CC", "BCC", "BODY", "TEXT", "HEADER"):
            field = arg() if word == "HEADER" else word
            needle = arg().lower()
            data = await asyncio.to_thread(self._read, entry)
            head, body = split_message(data or b"")
            if word == "BODY":
                return needle in body.decode("utf-8", "replace").lower()
            if word == "TEXT":
                return needle in (data or b"").decode("utf-8", "replace").lower()
            return needle in header_value(head, field).lower()
        if word[0].isdigit() or word[0] == "*":
            wanted = parse_set(word, len(self.uids))
            if wanted is None:
                raise Bad("invalid sequence set")
            return seq in wanted
        raise Bad(f"unsupported search key {key}")

    def _read(self, entry: Entry) -> bytes | None:
        """The message in CRLF form; looked up again if another session renamed it (flags changed)."""
        return read_message(self.maildir, entry)

    async def cmd_IDLE(self, tag: str, args: list) -> None:
        """RFC 2177: report new and vanished messages until the client sends DONE."""
        self._need_login()
        await self.send("+ idling\r\n")
        deadline = asyncio.get_running_loop().time() + self.idle_timeout
        while True:
            if self.maildir is not None:
                await self._sync(report_expunges=True)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError()
            try:
                line = await asyncio.wait_for(self.reader.readuntil(b"\n"), min(IDLE_POLL, remaining))
            except TimeoutError:
                continue
            except asyncio.IncompleteReadError:
                raise ConnectionResetError() from None
            except asyncio.LimitOverrunError:
                raise Bad("expected DONE") from None
            if line.strip().upper() == b"DONE":
                await self.send(f"{tag} OK IDLE terminated\r\n")
                return
            raise Bad("expected DONE")

    async def cmd_UID_SEARCH(self, tag: str, args: list) -> None:
        await self.cmd_SEARCH(tag, args, by_uid=True)

    async def cmd_UID_STORE(self, tag: str, args: list) -> None:
        await self.cmd_STORE(tag, args, by_uid=True)


async def start_imap(service: "MailService", host: str, port: int, implicit_tls: bool) -> asyncio.AbstractServer:
    async def client(reader, writer):
        await service.serve("imaps" if implicit_tls else "imap", writer, TOO_MANY,
                            lambda: ImapSession(service, reader, writer, implicit_tls))

    return await asyncio.start_server(client, host, port, ssl=service.tls if implicit_tls else None,
                                      reuse_address=True, limit=64 * 1024)


__all__ = ["start_imap", "quote"]
