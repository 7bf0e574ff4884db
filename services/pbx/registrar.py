"""Location service: extension -> contacts (with the flow they registered from, for NAT), and its copy on
disk (SQLite, WAL, 0600) so phones stay reachable across restarts without registering again."""
from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from .sip.transport import Dest, contact_flow

log = logging.getLogger("officebox.pbx.registrar")


@dataclass
class Binding:
    extension: str
    contact: str  # the Contact URI as the phone sent it
    flow: Dest  # where its REGISTER came from: requests go back there (NAT, TCP connection reuse)
    expires_at: float
    call_id: str
    cseq: int
    user_agent: str = ""
    registered_at: float = 0.0

    def seconds_left(self) -> int:
        return max(0, int(self.expires_at - time.time()))


_FIELDS = tuple(f.name for f in fields(Binding))


def _row(b: Binding) -> tuple:
    """astuple(b) without its recursive deep copy (the only non-scalar field, flow, is a tuple)."""
    return tuple(getattr(b, name) for name in _FIELDS)


class Location:
    def __init__(self) -> None:
        self.bindings: dict[str, list[Binding]] = {}
        self.on_change: Callable[[str], None] = lambda extension: None  # the bindings of one extension changed

    def lookup(self, extension: str) -> list[Binding]:
        now = time.time()
        alive = [b for b in self.bindings.get(extension, []) if b.expires_at > now]
        if alive:
            self.bindings[extension] = alive
        else:
            self.bindings.pop(extension, None)
        return alive

    def update(self, extension: str, contact: str, flow: Dest, expires: int, call_id: str, cseq: int,
               user_agent: str, max_contacts: int) -> str | None:
        """Add/refresh/remove one binding; returns an error reason or None."""
        current = self.lookup(extension)
        existing = next((b for b in current if b.contact == contact), None)
        if existing and existing.call_id == call_id and cseq <= existing.cseq:
            return "out of order"
        if expires == 0:
            if existing:
                current.remove(existing)
            self._store(extension, current)
            return None
        now = time.time()
        if existing:
            existing.flow, existing.expires_at, existing.call_id, existing.cseq = flow, now + expires, call_id, cseq
            existing.user_agent = user_agent
        else:
            if len(current) >= max_contacts:
                current.sort(key=lambda b: b.expires_at)
                current.pop(0)  # the oldest binding makes room (a replaced phone)
            current.append(Binding(extension, contact, flow, now + expires, call_id, cseq, user_agent, now))
        self._store(extension, current)
        return None

    def drop_flow(self, flow: Dest) -> int:
        """A connection-oriented flow died: its bindings stay until they expire, reached by a new
        connection to their contact (the phone's own, not the flow's, port); dropped when that is unknown."""
        dropped = 0
        for ext in list(self.bindings):
            if not any(b.flow == flow for b in self.bindings[ext]):
                continue
            keep = []
            for b in self.bindings[ext]:
                new = contact_flow(b.contact) if b.flow == flow else b.flow
                if new:
                    b.flow = new
                    keep.append(b)
            dropped += len(self.bindings[ext]) - len(keep)
            self._store(ext, keep)
        return dropped

    def remove_all(self, extension: str) -> None:
        self._store(extension, [])

    def has_ip(self, ip: str) -> bool:
        """A live registration came from this address."""
        now = time.time()
        return any(b.flow[1] == ip and b.expires_at > now for bs in list(self.bindings.values()) for b in bs)

    def restore(self, bindings: list[Binding]) -> None:
        for b in bindings:
            self.bindings.setdefault(b.extension, []).append(b)

    def _store(self, extension: str, bindings: list[Binding]) -> None:
        if bindings:
            self.bindings[extension] = bindings
        else:
            self.bindings.pop(extension, None)
        self.on_change(extension)

    def snapshot(self) -> list[dict]:
        """Read-only (safe from another thread: the web admin)."""
        rows = []
        now = time.time()
        for ext, bindings in sorted(list(self.bindings.items())):
            for b in [b for b in list(bindings) if b.expires_at > now]:
                rows.append({"extension": ext, "contact": b.contact, "source": f"{b.flow[0]}:{b.flow[1]}:{b.flow[2]}",
                             "expires_in": b.seconds_left(), "user_agent": b.user_agent})
        return rows


_COLUMNS = "extension, contact, transport, ip, port, expires_at, call_id, cseq, user_agent, registered_at"


class BindingStore:
    """The bindings on disk, one row each. Used from one thread at a time (BindingWriter's worker)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # 0600 before SQLite writes anything
        self.path.chmod(0o600)
        self.db = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash keeps every commit, a power cut the file
        self.db.execute("""CREATE TABLE IF NOT EXISTS bindings (extension TEXT NOT NULL, contact TEXT NOT NULL,
            transport TEXT NOT NULL, ip TEXT NOT NULL, port INTEGER NOT NULL, expires_at REAL NOT NULL,
            call_id TEXT NOT NULL, cseq INTEGER NOT NULL, user_agent TEXT NOT NULL, registered_at REAL NOT NULL,
            PRIMARY KEY (extension, contact))""")

    def load(self) -> list[Binding]:
        """The live bindings, the expired ones deleted. A TCP binding's connection died with the process:
        it is reached by a new connection to its contact, or deleted when the contact gives no address."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM bindings ORDER BY registered_at").fetchall()
            found = []
            for ext, contact, transport, ip, port, expires_at, call_id, cseq, ua, registered_at in rows:
                flow = (transport, ip, port) if transport == "udp" else contact_flow(contact)
                if flow is None:
                    self.db.execute("DELETE FROM bindings WHERE extension = ? AND contact = ?", (ext, contact))
                    continue
                found.append(Binding(ext, contact, flow, expires_at, call_id, cseq, ua, registered_at))
        return found

    def replace(self, changes: dict[str, list[tuple]]) -> None:
        """One transaction: each extension's rows become the given ones (Binding tuples)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for ext, rows in changes.items():
                self.db.execute("DELETE FROM bindings WHERE extension = ?", (ext,))
                self.db.executemany(f"INSERT INTO bindings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    [(e, c, *flow, *rest) for e, c, flow, *rest in rows])

    def close(self) -> None:
        self.db.close()


class BindingWriter:
    """Writes the extensions whose bindings changed, off the event loop, in batches (group commit): a
    `then` callback (the REGISTER's 200) runs once the change it follows is on disk."""

    def __init__(self, store: BindingStore, location: Location) -> None:
        self.store = store
        self.location = location
        self._dirty: set[str] = set()
        self._waiting: list[Callable[[], None]] = []
        self._task: asyncio.Task | None = None
        self._closed = False
        location.on_change = self.changed

    def changed(self, extension: str) -> None:
        self._dirty.add(extension)
        self._kick()

    def then(self, fn: Callable[[], None]) -> None:
        if self._closed:
            fn()
            return
        self._waiting.append(fn)
        self._kick()

    def _kick(self) -> None:
        if self._closed:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._dirty or self._waiting:
            dirty, self._dirty = self._dirty, set()
            waiting, self._waiting = self._waiting, []
            changes = {ext: [_row(b) for b in self.location.bindings.get(ext, [])] for ext in dirty}
            if changes:
                try:
                    await asyncio.to_thread(self.store.replace, changes)
                except Exception:
                    log.exception("could not save the registrations (they stay in memory)")
            for fn in waiting:
                try:
                    fn()
                except Exception:
                    log.exception("after saving the registrations")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            await asyncio.shield(self._task)
        await asyncio.to_thread(self.store.close)
