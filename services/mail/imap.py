"""IMAP4rev1 server, the subset mail clients need on one INBOX (RFC 3501).

LOGIN only over TLS (STARTTLS or port 993). SELECT/EXAMINE, LIST/LSUB/STATUS, FETCH (FLAGS, UID,
INTERNALDATE, RFC822*, BODY[...] and BODY.PEEK[...] with HEADER, TEXT, HEADER.FIELDS[.NOT] and partial
ranges), SEARCH (flags, sets, text, size, NOT/OR), STORE, EXPUNGE, CLOSE, UID FETCH/SEARCH/STORE.
ENVELOPE, BODY, BODYSTRUCTURE and numbered parts (BODY[2], BODY[1.MIME], BODY[3.HEADER]).
Not offered: other folders, APPEND, IDLE.
"""
from __future__ import annotations

import asyncio
import calendar
import logging
import os
import re
import shutil
import time
from typing import TYPE_CHECKING

from services.mail import imapmime
from services.mail.imapwire import (
    LITERAL_AT_END,
    ParseError,
    header_fields,
    header_value,
    internal_date,
    literal,
    parse_set,
    quote,
    split_message,
    tokenize,
)
from services.mail.lineserver import LineSession, LineTooLong
from services.mail.maildir import FLAG_LETTERS, Entry, Maildir, read_message

if TYPE_CHECKING:
    from services.mail.service import MailService

log = logging.getLogger("officebox.mail.imap")
MAX_LITERAL = 64 * 1024
MAX_ERRORS = 20
SYSTEM_FLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"
MACROS = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
          "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
          "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]}
SECTION = re.compile(r"^((?:\d+\.)*\d+)?\.?(.*)$", re.S)
FLAG_SEARCH = {"SEEN": ("S", True), "UNSEEN": ("S", False), "NEW": ("S", False), "OLD": None,
               "DELETED": ("T", True), "UNDELETED": ("T", False), "FLAGGED": ("F", True),
               "UNFLAGGED": ("F", False), "ANSWERED": ("R", True), "UNANSWERED": ("R", False),
               "DRAFT": ("D", True), "UNDRAFT": ("D", False)}


CAPABILITIES = "IMAP4rev1 LITERAL+ IDLE MOVE SPECIAL-USE"
IDLE_POLL = 5.0
FOLDER_NAME = re.compile(r"^[A-Za-z0-9 _&,+-]{1,64}$")
SPECIAL_USE = {"sent": "\\Sent", "drafts": "\\Drafts", "trash": "\\Trash", "junk": "\\Junk",
               "spam": "\\Junk", "archive": "\\Archive"}


def _letters(flags: list) -> str:
    """Maildir letters of the system flags in an IMAP flag list (keywords are not kept)."""
    letters = ""
    for flag in flags:
        match = next((f for f in FLAG_LETTERS if isinstance(flag, str) and f.lower() == flag.lower()), None)
        if match is not None:
            letters += FLAG_LETTERS[match]
    return letters


def _store_copy(target: Maildir, data: bytes, letters: str, when: float | None) -> None:
    base = target.deliver(data)
    entry = Entry(base, target.root / "new" / base, "")
    if letters:
        entry = target.set_flags(entry, letters)
    if when is not None:
        os.utime(entry.path, (when, when))


class Bad(Exception):
    """The command is malformed: tagged BAD."""


class No(Exception):
    """The command failed: tagged NO."""


class ImapSession(LineSession):
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
                if line is None:
                    return
                tag, _, rest = line.partition(b" ")
                tag_text = tag.decode("ascii", "replace")
                if not tag or not tag_text.isprintable() or any(c in tag_text for c in '(){%*"\\+'):
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
        """A command line with its literals ({n} / {n+}) collected."""
        line = await self.read_line()
        if line is None:
            return None
        literals: list[bytes] = []
        while (match := LITERAL_AT_END.search(line)) is not None:
            size = int(match[1])
            limit = self.service.section.max_message_size if self.login else MAX_LITERAL
            if size > limit or len(literals) >= 8:
                raise ParseError("literal too large")
            if not match[2]:
                await self.send("+ ready for literal data\r\n")
            try:
                data = await asyncio.wait_for(self.reader.readexactly(size), self.idle_timeout)
            except asyncio.IncompleteReadError:
                return None
            line = line[:match.start()] + b"\x00%04d" % len(literals)
            literals.append(data)
            more = await self.read_line()
            if more is None:
                return None
            line += more
        self.literals = literals
        return line

    # -- any state -----------------------------------------------------------------------------
    def _capabilities(self) -> str:
        return CAPABILITIES + ("" if self.secure else " STARTTLS LOGINDISABLED")

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

    async def cmd_LOGIN(self, tag: str, args: list) -> None:
        if self.login is not None:
            raise Bad("already logged in")
        if not self.secure:
            raise No("[PRIVACYREQUIRED] use STARTTLS first: passwords are not sent in clear")
        if len(args) != 2 or not all(isinstance(a, (str, bytes)) for a in args):
            raise Bad("usage: LOGIN user password")
        username, password = (a.decode("utf-8", "replace") if isinstance(a, bytes) else a for a in args)
        user = await self.check_password(username, password)
        if user is None:
            raise No("[AUTHENTICATIONFAILED] invalid user name or password")
        self.login = user.login
        await self.send(f"{tag} OK [CAPABILITY {self._capabilities()}] logged in\r\n")

    async def cmd_AUTHENTICATE(self, tag: str, args: list) -> None:
        raise No("use LOGIN (over TLS)")

    # -- authenticated -------------------------------------------------------------------------
    def _need_login(self) -> None:
        if self.login is None:
            raise Bad("log in first")

    def _name(self, args: list, count: int = 1) -> str:
        self._need_login()
        if len(args) < count or not isinstance(args[0], (str, bytes)):
            raise Bad("missing mailbox name")
        name = args[0].decode("utf-8", "replace") if isinstance(args[0], bytes) else args[0]
        return "INBOX" if name.upper() == "INBOX" else name

    def _mailbox(self, name: str, must_exist: bool = True) -> Maildir:
        inbox = self.service.maildir(self.login)
        if name == "INBOX":
            return inbox
        if not FOLDER_NAME.match(name):
            raise No("folder names use letters, digits, spaces and _ - & , + (one level, no '/' or '.')")
        folder = inbox.folder(name)
        if must_exist and not (folder.root / "cur").is_dir():
            raise No(f"[NONEXISTENT] there is no folder {name}")
        return folder

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

    async def _list(self, tag: str, args: list, verb: str) -> None:
        self._need_login()
        if len(args) != 2 or not all(isinstance(a, str) for a in args):
            raise Bad(f"usage: {verb} reference pattern")
        pattern = args[0] + args[1]
        if args[1] == "":
            await self.send(f'* {verb} (\\Noselect) "/" ""\r\n{tag} OK {verb} completed\r\n')
            return
        regex = re.compile("^" + re.escape(pattern).replace(r"\*", ".*").replace("%", "[^/]*") + "$", re.I)
        names = ["INBOX"] + await asyncio.to_thread(self.service.maildir(self.login).folders)
        out = []
        for name in names:
            if regex.match(name):
                attributes = ["\\HasNoChildren"] + ([SPECIAL_USE[name.lower()]] if name.lower() in SPECIAL_USE else [])
                out.append(f'* {verb} ({" ".join(attributes)}) "/" {quote(name)}\r\n')
        await self.send("".join(out) + f"{tag} OK {verb} completed\r\n")

    async def cmd_LIST(self, tag: str, args: list) -> None:
        await self._list(tag, args, "LIST")

    async def cmd_LSUB(self, tag: str, args: list) -> None:
        await self._list(tag, args, "LSUB")  # every folder counts as subscribed

    async def cmd_SUBSCRIBE(self, tag: str, args: list) -> None:
        self._mailbox(self._name(args))
        await self.send(f"{tag} OK SUBSCRIBE completed\r\n")

    cmd_UNSUBSCRIBE = cmd_SUBSCRIBE

    async def cmd_STATUS(self, tag: str, args: list) -> None:
        name = self._name(args, 2)
        maildir = self._mailbox(name)
        if not isinstance(args[1], list):
            raise Bad("usage: STATUS mailbox (items)")
        entries = await asyncio.to_thread(maildir.scan)
        validity, next_uid, _ = await asyncio.to_thread(maildir.assign_uids, entries)
        values = {"MESSAGES": len(entries), "RECENT": 0, "UIDNEXT": next_uid, "UIDVALIDITY": validity,
                  "UNSEEN": sum(1 for e in entries if "S" not in e.flags)}
        items = []
        for item in args[1]:
            if not isinstance(item, str) or item.upper() not in values:
                raise Bad(f"unknown status item {item!r}")
            items.append(f"{item.upper()} {values[item.upper()]}")
        await self.send(f"* STATUS {quote(name)} ({' '.join(items)})\r\n{tag} OK STATUS completed\r\n")

    async def cmd_CREATE(self, tag: str, args: list) -> None:
        name = self._name(args).rstrip("/")
        if name == "INBOX":
            raise No("[ALREADYEXISTS] INBOX always exists")
        folder = self._mailbox(name, must_exist=False)
        if (folder.root / "cur").is_dir():
            raise No(f"[ALREADYEXISTS] folder {name} exists")
        await asyncio.to_thread(folder.ensure)
        await self.send(f"{tag} OK CREATE completed\r\n")

    async def cmd_DELETE(self, tag: str, args: list) -> None:
        name = self._name(args)
        if name == "INBOX":
            raise No("INBOX cannot be deleted")
        folder = self._mailbox(name)
        if self.maildir is not None and self.maildir.root == folder.root:
            raise No("close the folder before deleting it")
        await asyncio.to_thread(shutil.rmtree, folder.root)
        await self.send(f"{tag} OK DELETE completed\r\n")

    async def cmd_RENAME(self, tag: str, args: list) -> None:
        if len(args) != 2:
            raise Bad("usage: RENAME old new")
        old, new = self._name(args[:1]), self._name(args[1:])
        if "INBOX" in (old, new):
            raise No("INBOX cannot be renamed")
        source, target = self._mailbox(old), self._mailbox(new, must_exist=False)
        if target.root.exists():
            raise No(f"[ALREADYEXISTS] folder {new} exists")
        await asyncio.to_thread(os.rename, source.root, target.root)
        if self.maildir is not None and self.maildir.root == source.root:
            self.maildir = None
        await self.send(f"{tag} OK RENAME completed\r\n")

    async def cmd_APPEND(self, tag: str, args: list) -> None:
        name = self._name(args, 2)
        target = self._mailbox(name)
        message = args[-1]
        if not isinstance(message, bytes) or len(args) > 4:
            raise Bad("usage: APPEND mailbox [(flags)] [date-time] {literal}")
        letters = _letters(args[1]) if len(args) >= 3 and isinstance(args[1], list) else ""
        date = args[-2] if len(args) >= 3 and isinstance(args[-2], str) else None
        when = None
        if date is not None:
            try:
                when = calendar.timegm(time.strptime(date.split(" +")[0].split(" -")[0].strip(),
                                                     "%d-%b-%Y %H:%M:%S"))
            except ValueError:
                raise Bad("invalid date-time") from None
        await asyncio.to_thread(_store_copy, target, bytes(message), letters, when)
        if self.maildir is not None and self.maildir.root == target.root:
            await self._sync(report_expunges=False)
        await self.send(f"{tag} OK APPEND completed\r\n")

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
        letters = _letters(flags)
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

    async def cmd_FETCH(self, tag: str, args: list, by_uid: bool = False) -> None:
        self._need_selected()
        if len(args) != 2:
            raise Bad("usage: FETCH set items")
        items = args[1] if isinstance(args[1], list) else [args[1]]
        if len(items) == 1 and isinstance(items[0], str) and items[0].upper() in MACROS:
            items = MACROS[items[0].upper()]
        names = []
        for item in items:
            if not isinstance(item, str):
                raise Bad("invalid fetch item")
            names.append(item)
        if by_uid and not any(n.upper() == "UID" for n in names):
            names.insert(0, "UID")
        for seq in self._targets(args[0], by_uid):
            await self._fetch_one(seq, names)
        await self.send(f"{tag} OK FETCH completed\r\n")

    async def _fetch_one(self, seq: int, names: list[str]) -> None:
        uid = self.uids[seq - 1]
        entry = self.entries[uid]
        data: bytes | None = None
        parts: list[bytes] = []
        mark_seen = False
        for name in names:
            upper = name.upper()
            if upper == "UID":
                parts.append(b"UID %d" % uid)
            elif upper == "FLAGS":
                continue  # added last, after a possible \Seen change
            elif upper == "INTERNALDATE":
                try:
                    mtime = entry.path.stat().st_mtime
                except FileNotFoundError:
                    mtime = 0
                parts.append(f"INTERNALDATE {internal_date(mtime)}".encode())
            elif upper == "RFC822.SIZE":
                parts.append(b"RFC822.SIZE %d" % entry.size)
            elif upper in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
                if data is None:
                    data = await asyncio.to_thread(self._read, entry)
                    if data is None:
                        return
                tree = imapmime.parse(data)
                if upper == "ENVELOPE":
                    parts.append(b"ENVELOPE " + imapmime.envelope(tree))
                else:
                    parts.append(upper.encode() + b" " + imapmime.bodystructure(tree, upper == "BODYSTRUCTURE"))
            elif upper in ("RFC822", "RFC822.HEADER", "RFC822.TEXT") or upper.startswith(("BODY[", "BODY.PEEK[")):
                if data is None:
                    data = await asyncio.to_thread(self._read, entry)
                    if data is None:
                        return  # vanished: reported as EXPUNGE at the next NOOP
                label, value = self._section(upper, name, data)
                parts.append(label.encode() + b" " + literal(value))
                mark_seen |= not upper.startswith(("BODY.PEEK", "RFC822.HEADER"))
            else:
                raise Bad(f"unsupported fetch item {name}")
        if mark_seen and not self.readonly and "S" not in entry.flags:
            try:
                entry = await asyncio.to_thread(self.maildir.set_flags, entry, entry.flags + "S")
                self.entries[uid] = entry
            except FileNotFoundError:
                pass
        if any(n.upper() == "FLAGS" for n in names) or mark_seen:
            parts.append(f"FLAGS ({' '.join(entry.imap_flags())})".encode())
        await self.send(b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n")

    @staticmethod
    def _section(upper: str, name: str, data: bytes) -> tuple[str, bytes]:
        if upper == "RFC822":
            return "RFC822", data
        head, body = split_message(data)
        if upper == "RFC822.HEADER":
            return "RFC822.HEADER", head
        if upper == "RFC822.TEXT":
            return "RFC822.TEXT", body
        inner = name[name.index("[") + 1:name.rindex("]")]
        partial = name[name.rindex("]") + 1:]
        match = SECTION.match(inner)
        numbers = [int(n) for n in match[1].split(".")] if match[1] else []
        rest = match[2].upper()
        root = imapmime.parse(data)
        part = imapmime.find(root, numbers) if numbers else root
        if part is None:
            raise Bad(f"no body part [{inner}]")
        if numbers and rest in ("", "MIME"):
            value = part.body if rest == "" else part.header
        else:
            if numbers and part.inner is None:
                raise Bad(f"[{inner}]: HEADER and TEXT apply to a message part only")
            target = part.inner if numbers else part
            if rest == "":
                value = data
            elif rest == "HEADER":
                value = target.header
            elif rest == "TEXT":
                value = target.body
            elif rest.startswith(("HEADER.FIELDS ", "HEADER.FIELDS.NOT ")):
                try:
                    fields = tokenize(match[2].split(" ", 1)[1].encode())[0]
                except (ParseError, IndexError):
                    raise Bad("invalid header field list") from None
                if not isinstance(fields, list):
                    raise Bad("invalid header field list")
                value = header_fields(target.header, [str(f) for f in fields], rest.startswith("HEADER.FIELDS.NOT"))
            else:
                raise Bad(f"unsupported body section [{inner}]")
        label = f"BODY[{inner}]"
        if partial:
            try:
                start, _, length = partial.strip("<>").partition(".")
                start_n = int(start)
                value = value[start_n:start_n + int(length)] if length else value[start_n:]
            except ValueError:
                raise Bad("invalid partial range") from None
            label += f"<{start_n}>"
        return label, value

    async def cmd_COPY(self, tag: str, args: list, by_uid: bool = False, move: bool = False) -> None:
        self._need_selected()
        if len(args) != 2:
            raise Bad("usage: COPY set mailbox")
        target = self._mailbox(self._name(args[1:]))
        if move and self.readonly:
            raise No("the mailbox is read-only")
        chosen = self._targets(args[0], by_uid)
        for seq in chosen:
            entry = self.entries[self.uids[seq - 1]]
            data = await asyncio.to_thread(read_message, self.maildir, entry)
            if data is not None:
                letters = "".join(c for c in entry.flags if not (move and c == "T"))
                await asyncio.to_thread(_store_copy, target, data, letters, entry.path.stat().st_mtime
                                        if entry.path.exists() else None)
        if move:
            out = []
            for seq in sorted(chosen, reverse=True):
                uid = self.uids[seq - 1]
                await asyncio.to_thread(self.maildir.remove, self.entries.pop(uid))
                del self.uids[seq - 1]
                out.append(f"* {seq} EXPUNGE\r\n")
            await self.send("".join(out))
        elif target.root == self.maildir.root:
            await self._sync(report_expunges=False)
        await self.send(f"{tag} OK {'MOVE' if move else 'COPY'} completed\r\n")

    async def cmd_MOVE(self, tag: str, args: list) -> None:
        await self.cmd_COPY(tag, args, move=True)

    async def cmd_UID_COPY(self, tag: str, args: list) -> None:
        await self.cmd_COPY(tag, args, by_uid=True)

    async def cmd_UID_MOVE(self, tag: str, args: list) -> None:
        await self.cmd_COPY(tag, args, by_uid=True, move=True)

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

    async def cmd_UID_FETCH(self, tag: str, args: list) -> None:
        await self.cmd_FETCH(tag, args, by_uid=True)

    async def cmd_UID_SEARCH(self, tag: str, args: list) -> None:
        await self.cmd_SEARCH(tag, args, by_uid=True)

    async def cmd_UID_STORE(self, tag: str, args: list) -> None:
        await self.cmd_STORE(tag, args, by_uid=True)


async def start_imap(service: "MailService", host: str, port: int, implicit_tls: bool) -> asyncio.AbstractServer:
    async def client(reader, writer):
        await service.track(ImapSession(service, reader, writer, implicit_tls).run())

    return await asyncio.start_server(client, host, port, ssl=service.tls if implicit_tls else None,
                                      reuse_address=True, limit=64 * 1024)


__all__ = ["start_imap", "quote"]
