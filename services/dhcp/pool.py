"""Free-address bookkeeping in O(1) amortised per choice, whatever the pool size or how full it is.

AddressPool (one address range): never-used addresses first (a cursor that walks the gaps between
the addresses the lease table held at start, then addresses that left the table), then freed leases,
oldest first. Entries are checked when taken, so one that went stale in the meantime costs one
look-up and is dropped; the cursor looks at MAX_STEPS addresses per choice at most.

OfferBook: outstanding offers in the order they were made (all holds are equally long, so this is
also expiry order); expired ones go back to their pool at once, and when a pool has nothing free the
oldest offer made to another client is taken back (an offer is not a lease).
"""
from __future__ import annotations

import ipaddress
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

IP = ipaddress.IPv4Address
MAX_STEPS = 64


class AddressPool:
    def __init__(self, start: IP, end: IP, lease_time: int) -> None:
        self.start, self.end, self.lease_time = int(start), int(end), lease_time
        self._gaps: deque[tuple[int, int]] = deque([(self.start, self.end)])  # never handed out yet
        self._fresh: OrderedDict[int, None] = OrderedDict()  # left the table: offers withdrawn, rests over
        self._freed: OrderedDict[int, None] = OrderedDict()  # released or expired leases, oldest first

    def __contains__(self, ip: IP) -> bool:
        return self.start <= int(ip) <= self.end

    def exclude(self, taken: Iterable[int]) -> None:
        """The addresses the lease table holds at start: the cursor jumps over them."""
        gaps, at = deque(), self.start
        for n in sorted(x for x in taken if self.start <= x <= self.end):
            if n > at:
                gaps.append((at, n - 1))
            at = max(at, n + 1)
        if at <= self.end:
            gaps.append((at, self.end))
        self._gaps = gaps

    def give_back(self, ip: IP, used: bool) -> None:
        """`ip` is free again: `used` if its lease record stays (the last owner gets it back first)."""
        queue = self._freed if used else self._fresh
        queue[int(ip)] = None
        queue.move_to_end(int(ip))

    def take(self, never_used: Callable[[IP], bool], available: Callable[[IP], bool]) -> IP | None:
        for _ in range(MAX_STEPS):
            if not self._gaps:
                break
            low, high = self._gaps[0]
            if low == high:
                self._gaps.popleft()
            else:
                self._gaps[0] = (low + 1, high)
            if never_used(IP(low)):
                return IP(low)
        for queue in (self._fresh, self._freed):
            while queue:
                ip = IP(queue.popitem(last=False)[0])
                if available(ip):
                    return ip
        return None


class OfferBook:
    def __init__(self) -> None:
        self._offers: OrderedDict[IP, tuple[str, float]] = OrderedDict()  # ip -> (client, made at)

    def __len__(self) -> int:
        return len(self._offers)

    def add(self, ip: IP, client: str, now: float) -> None:
        self._offers[ip] = (client, now)
        self._offers.move_to_end(ip)

    def expired(self, made_before: float) -> list[tuple[IP, str]]:
        """Remove and return the offers made before `made_before` (the caller checks they still stand)."""
        gone = []
        while self._offers:
            ip, (client, made) = next(iter(self._offers.items()))
            if made >= made_before:
                break
            del self._offers[ip]
            gone.append((ip, client))
        return gone

    def oldest(self, pool: AddressPool, not_for: str, made_before: float,
               stands: Callable[[IP, str], bool]) -> IP | None:
        """Take back the oldest standing offer in `pool` made to another client before `made_before`.
        Entries that no longer stand are dropped on the way; others are left in place."""
        for ip, (client, made) in list(itertools.islice(self._offers.items(), 64)):  # bounded look-ahead
            if made >= made_before:
                return None
            if not stands(ip, client):
                del self._offers[ip]
            elif client != not_for and ip in pool:
                del self._offers[ip]
                return ip
        return None
