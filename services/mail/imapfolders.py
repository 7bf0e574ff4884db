"""IMAP folders (Maildir++: one level of <Maildir>/.<name>/) and moving messages between them."""
from __future__ import annotations

import asyncio
import calendar
import os
import re
import shutil
import time

from services.mail.imapwire import Bad, No, quote
from services.mail.maildir import FLAG_LETTERS, Entry, Maildir, read_message

FOLDER_NAME = re.compile(r"^[A-Za-z0-9 _&,+-]{1,64}$")
SPECIAL_USE = {"sent": "\\Sent", "drafts": "\\Drafts", "trash": "\\Trash", "junk": "\\Junk",
               "spam": "\\Junk", "archive": "\\Archive"}


def letters_of(flags: list) -> str:
    """Maildir letters of the system flags in an IMAP flag list (keywords are not kept)."""
    letters = ""
    for flag in flags:
        match = next((f for f in FLAG_LETTERS if isinstance(flag, str) and f.lower() == flag.lower()), None)
        if match is not None:
            letters += FLAG_LETTERS[match]
    return letters


def store_copy(target: Maildir, data: bytes, letters: str, when: float | None) -> None:
    base = target.deliver(data)
    entry = Entry(base, target.root / "new" / base, "")
    if letters:
        entry = target.set_flags(entry, letters)
    if when is not None:
        os.utime(entry.path, (when, when))


class FolderCommands:
    """LIST/LSUB/STATUS/CREATE/DELETE/RENAME/SUBSCRIBE/APPEND/COPY/MOVE for ImapSession."""

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
        letters = letters_of(args[1]) if len(args) >= 3 and isinstance(args[1], list) else ""
        date = args[-2] if len(args) >= 3 and isinstance(args[-2], str) else None
        when = None
        if date is not None:
            try:
                when = calendar.timegm(time.strptime(date.split(" +")[0].split(" -")[0].strip(),
                                                     "%d-%b-%Y %H:%M:%S"))
            except ValueError:
                raise Bad("invalid date-time") from None
        await asyncio.to_thread(store_copy, target, bytes(message), letters, when)
        if self.maildir is not None and self.maildir.root == target.root:
            await self._sync(report_expunges=False)
        await self.send(f"{tag} OK APPEND completed\r\n")

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
                await asyncio.to_thread(store_copy, target, data, letters, entry.path.stat().st_mtime
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
