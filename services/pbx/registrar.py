"""Location service: extension -> contacts (with the flow they registered from, for NAT)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from .sip.transport import Dest, contact_flow


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


class Location:
    def __init__(self) -> None:
        self.bindings: dict[str, list[Binding]] = {}

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
        self.bindings.pop(extension, None)

    def has_ip(self, ip: str) -> bool:
        """A live registration came from this address."""
        now = time.time()
        return any(b.flow[1] == ip and b.expires_at > now for bs in list(self.bindings.values()) for b in bs)

    def _store(self, extension: str, bindings: list[Binding]) -> None:
        if bindings:
            self.bindings[extension] = bindings
        else:
            self.bindings.pop(extension, None)

    def snapshot(self) -> list[dict]:
        """Read-only (safe from another thread: the web admin)."""
        rows = []
        now = time.time()
        for ext, bindings in sorted(list(self.bindings.items())):
            for b in [b for b in list(bindings) if b.expires_at > now]:
                rows.append({"extension": ext, "contact": b.contact, "source": f"{b.flow[0]}:{b.flow[1]}:{b.flow[2]}",
                             "expires_in": b.seconds_left(), "user_agent": b.user_agent})
        return rows
