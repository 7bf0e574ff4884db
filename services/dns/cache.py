"""The answer cache: upstream answers kept as packed bytes, served with TTLs counted down.

An entry is the answer's sections after the question (OPT removed), the section counts, the rcode
and where each TTL sits, so a hit costs a header, a copy and a few struct writes.
"""
from __future__ import annotations

import struct
import time

from dnslib import QTYPE, RCODE, DNSRecord

from services.dns import wire

PACK_TTL = struct.Struct("!I").pack_into


class Entry:
    __slots__ = ("body", "counts", "rcode", "ttls", "stored", "expires", "_second", "_now_body")

    def __init__(self, body: bytes, counts: tuple[int, int, int], rcode: int, ttls: list[tuple[int, int]],
                 stored: float, expires: float) -> None:
        self.body, self.counts, self.rcode, self.ttls, self.stored, self.expires = (
            body, counts, rcode, ttls, stored, expires)
        self._second = -1
        self._now_body = body

    def body_at(self, now: float) -> bytes:
        """The answer sections with TTLs counted down to `now` (recomputed at most once a second)."""
        elapsed = int(now - self.stored)
        if elapsed != self._second:
            out = bytearray(self.body)
            for off, ttl in self.ttls:
                PACK_TTL(out, off, ttl - elapsed if ttl > elapsed else 0)
            self._now_body, self._second = bytes(out), elapsed
        return self._now_body


class Cache:
    def __init__(self, size: int, max_ttl: int, negative_ttl: int) -> None:
        self.size, self.max_ttl, self.negative_ttl = size, max_ttl, negative_ttl
        self.entries: dict[tuple, Entry] = {}

    def get(self, key: tuple, now: float) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None and entry.expires <= now:
            del self.entries[key]
            return None
        return entry

    def store(self, key: tuple, response: DNSRecord) -> Entry | None:
        """Cache an upstream answer (a copy is made); returns the entry, or None if not cacheable."""
        rcode = response.header.rcode
        if rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN) or response.header.tc:
            return None
        rec = DNSRecord(header=response.header, questions=response.questions[:1], rr=list(response.rr),
                        auth=list(response.auth), ar=[r for r in response.ar if r.rtype != QTYPE.OPT])
        if rec.rr and rcode == RCODE.NOERROR:
            ttl = limit = min(min(r.ttl for r in rec.rr), self.max_ttl)
            limit = self.max_ttl
        else:  # negative answer (RFC 2308): the SOA's minimum, bounded
            soa = next((r for r in rec.auth if r.rtype == QTYPE.SOA), None)
            ttl = min(soa.ttl, soa.rdata.times[-1]) if soa is not None else 60
            ttl = limit = min(ttl, self.negative_ttl)
        if ttl <= 0 or self.size == 0:
            return None
        packed = rec.pack()
        qend = wire.skip_name(packed, 12) + 4
        counts = (len(rec.rr), len(rec.auth), len(rec.ar))
        ttls = [(off - qend, min(t, limit)) for off, t in wire.ttl_offsets(packed, qend, sum(counts))]
        now = time.monotonic()
        entry = Entry(packed[qend:], counts, rcode, ttls, now, now + ttl)
        if len(self.entries) >= self.size:
            self._evict(now)
        self.entries[key] = entry
        return entry

    def _evict(self, now: float) -> None:
        expired = [k for k, e in self.entries.items() if e.expires <= now]
        for key in expired:
            del self.entries[key]
        while len(self.entries) >= self.size:  # oldest insertions first
            del self.entries[next(iter(self.entries))]

    def clear(self) -> None:
        self.entries.clear()


def render(entry: Entry, query: bytes, q: wire.Query, now: float) -> bytes:
    """The cached answer for this query: its id, its question as sent (case kept), TTLs counted down."""
    an, ns, ar = entry.counts
    flags = wire.QR | wire.RA | (q.flags & wire.RD) | entry.rcode
    out = b"".join((wire.HEADER.pack(q.qid, flags, 1, an, ns, ar + q.edns), query[12:q.qend], entry.body_at(now),
                    wire.OPT_RR if q.edns else b""))
    if len(out) > q.udp_size:  # too big for the client's UDP buffer: truncate, it retries over TCP
        out = wire.HEADER.pack(q.qid, flags | wire.TC, 1, 0, 0, 0) + query[12:q.qend]
    return out
