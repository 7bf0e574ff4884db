"""Who may hold a DNS-over-TCP connection: caps in total and per source address, idle connections
closed sooner when the table fills (RFC 7766 6.2.3), and the longest-idle one given up for a newcomer."""
from __future__ import annotations

import asyncio
import time

MAX_TCP = 64
PER_SOURCE = 8
IDLE = 10.0  # seconds a connection may wait for its next query
IDLE_BUSY = 1.0  # the same once half the table is taken


class Slot:
    __slots__ = ("src", "writer", "idle_since")

    def __init__(self, src: str, writer: asyncio.StreamWriter) -> None:
        self.src, self.writer = src, writer
        self.idle_since: float | None = time.monotonic()  # None while a query is being answered


class TcpSlots:
    def __init__(self, total: int = MAX_TCP, per_source: int = PER_SOURCE) -> None:
        self.total, self.per_source = total, per_source
        self.slots: set[Slot] = set()
        self.by_source: dict[str, set[Slot]] = {}
        self.evicted = 0

    def idle_timeout(self) -> float:
        return IDLE if len(self.slots) < self.total // 2 else IDLE_BUSY

    def admit(self, src: str, writer: asyncio.StreamWriter) -> Slot | None:
        """A slot for a new connection, or None (refused: every slot is busy answering)."""
        now = time.monotonic()
        if len(self.slots) >= self.total // 2:  # under pressure: the short idle timeout applies to all
            for slot in [s for s in self.slots if s.idle_since is not None and now - s.idle_since > IDLE_BUSY]:
                self._evict(slot)
        own = self.by_source.get(src, set())
        if len(own) >= self.per_source and not self._evict_idlest(own):
            return None
        if len(self.slots) >= self.total and not self._evict_idlest(self.slots):
            return None
        slot = Slot(src, writer)
        self.slots.add(slot)
        self.by_source.setdefault(src, set()).add(slot)
        return slot

    def _evict_idlest(self, among: set[Slot]) -> bool:
        idle = [s for s in among if s.idle_since is not None]
        if not idle:
            return False
        self._evict(min(idle, key=lambda s: s.idle_since))
        return True

    def _evict(self, slot: Slot) -> None:
        self.release(slot)
        self.evicted += 1
        slot.writer.close()

    def release(self, slot: Slot) -> None:
        if slot in self.slots:
            self.slots.discard(slot)
            own = self.by_source[slot.src]
            own.discard(slot)
            if not own:
                del self.by_source[slot.src]

    def close_all(self) -> None:
        for slot in list(self.slots):
            self.release(slot)
            slot.writer.close()
