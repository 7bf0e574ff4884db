"""Maildir storage (tmp -> new, unique names), shared by SMTP delivery, POP3 and IMAP.

Messages are stored with LF line endings; the name carries the size on disk (S=) and the size with
CRLF line endings (W=, what POP3 and IMAP announce). Flags live in the name (":2,FRS"), and IMAP UIDs in
`officebox-uidlist` (uidvalidity, next uid, uid -> base name).
"""
from __future__ import annotations

import itertools
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.fsutil import atomic_write, fsync_dir, write_synced

UIDLIST = "officebox-uidlist"
_counter = itertools.count(1)
FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()}


def to_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def to_crlf(data: bytes) -> bytes:
    return to_lf(data).replace(b"\n", b"\r\n")


def _hostname() -> str:
    return socket.gethostname().replace("/", "\\057").replace(":", "\\072").replace(",", "\\054")


@dataclass
class Entry:
    base: str  # unique name without the ":2,flags" part
    path: Path
    flags: str  # maildir letters, sorted

    @property
    def size(self) -> int:
        """Size with CRLF line endings (RFC 822 size)."""
        for part in self.base.split(",")[1:]:
            if part.startswith("W=") and part[2:].isdigit():
                return int(part[2:])
        return len(to_crlf(self.path.read_bytes()))

    def imap_flags(self) -> list[str]:
        return [LETTER_FLAGS[c] for c in self.flags if c in LETTER_FLAGS]


_NAME = re.compile(r"^(\d+)\.M(\d+)P\d+Q(\d+)")


def _age_key(entry: Entry) -> tuple:
    match = _NAME.match(entry.base)
    if match:
        return (int(match[1]), int(match[2]), int(match[3]), entry.base)
    return (int(entry.base.split(".")[0]) if entry.base.split(".")[0].isdigit() else 0, 0, 0, entry.base)


class Maildir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def ensure(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def deliver(self, data: bytes) -> str:
        """Store one message durably (fsync file, rename into new/, fsync folder); returns its base name."""
        self.ensure()
        body = to_lf(data)
        crlf_size = len(body) + body.count(b"\n")
        now = time.time()
        unique = (f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_counter)}"
                  f"R{secrets.token_hex(4)}.{_hostname()}")
        base = f"{unique},S={len(body)},W={crlf_size}"
        tmp = self.root / "tmp" / base
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                write_synced(fd, body)
            finally:
                os.close(fd)
            os.link(tmp, self.root / "new" / base)  # link: never overwrites an existing name
        finally:
            os.unlink(tmp)  # (disk full: no half message is left behind)
        fsync_dir(self.root / "new")
        return base

    def scan(self) -> list[Entry]:
        """Every message in new/ and cur/, oldest first."""
        entries = []
        for sub in ("new", "cur"):
            folder = self.root / sub
            if not folder.is_dir():
                continue
            for name in os.listdir(folder):
                if name.startswith("."):
                    continue
                base, _, info = name.partition(":")
                flags = info[2:] if info.startswith("2,") else ""
                entries.append(Entry(base, folder / name, "".join(sorted(flags))))
        entries.sort(key=_age_key)
        return entries

    def set_flags(self, entry: Entry, letters: str) -> Entry:
        """Rename the message into cur/ with these flags (RFC-style: cur/<base>:2,<letters>)."""
        letters = "".join(sorted(set(letters)))
        target = self.root / "cur" / f"{entry.base}:2,{letters}"
        if target != entry.path:
            os.rename(entry.path, target)
        return Entry(entry.base, target, letters)

    def remove(self, entry: Entry) -> bool:
        try:
            entry.path.unlink()
            return True
        except FileNotFoundError:
            return False

    # -- folders (Maildir++: <root>/.<name>/, one level) -------------------------------------------
    def folder(self, name: str) -> "Maildir":
        return Maildir(self.root / f".{name}")

    def folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name[1:] for p in self.root.iterdir()
                      if p.name.startswith(".") and (p / "cur").is_dir())

    # -- IMAP UIDs --------------------------------------------------------------------------------
    def read_uids(self) -> tuple[int, int, dict[str, int]]:
        path = self.root / UIDLIST
        try:
            lines = path.read_text().splitlines()
            _, validity, next_uid = lines[0].split()
            uids = {}
            for line in lines[1:]:
                uid, base = line.split(" ", 1)
                uids[base] = int(uid)
            return int(validity), int(next_uid), uids
        except (FileNotFoundError, ValueError, IndexError):
            return int(time.time()), 1, {}

    def assign_uids(self, entries: list[Entry]) -> tuple[int, int, dict[str, int]]:
        """UIDs for these messages, giving new ones the next numbers; saved when anything changed."""
        validity, next_uid, uids = self.read_uids()
        current = {e.base for e in entries}
        changed = not (self.root / UIDLIST).exists() or any(base not in current for base in uids)
        uids = {base: uid for base, uid in uids.items() if base in current}
        for entry in entries:
            if entry.base not in uids:
                uids[entry.base] = next_uid
                next_uid += 1
                changed = True
        if changed:
            self.ensure()
            lines = [f"1 {validity} {next_uid}"] + [f"{uid} {base}" for base, uid in
                                                    sorted(uids.items(), key=lambda kv: kv[1])]
            atomic_write(self.root / UIDLIST, "\n".join(lines) + "\n", mode=0o600)
        return validity, next_uid, uids


def read_message(maildir: Maildir, entry: Entry) -> bytes | None:
    """A message with CRLF line endings, None if it is gone. If another session changed its flags
    (renamed it), it is found again by its base name."""
    try:
        return to_crlf(entry.path.read_bytes())
    except FileNotFoundError:
        pass
    for candidate in maildir.scan():
        if candidate.base == entry.base:
            try:
                return to_crlf(candidate.path.read_bytes())
            except FileNotFoundError:
                return None
    return None
