"""The answer cache: answers kept as packed bytes, served with TTLs counted down.

An entry is an answer's sections after the question (OPT removed), twice when it holds DNSSEC records:
with them for clients that set DO, without them for the others (RFC 4035 3.2.1). Each body keeps its
section counts and where each TTL sits, so a hit costs a header, a copy and a few struct writes.
Local-zone answers are entries too (flag AA, TTLs fixed), rendered by the same fast path.
"""
from __future__ import annotations

import struct
import time

from dnslib import QTYPE, RCODE, DNSRecord

from services.dns import wire

PACK_TTL = struct.Struct("!I").pack_into
DNSSEC_TYPES = frozenset((QTYPE.RRSIG, QTYPE.NSEC, QTYPE.NSEC3))
OPT_PLAIN, OPT_DO = wire.opt_rr(False), wire.opt_rr(True)


class Body:
    __slots__ = ("data", "counts", "ttls", "_second", "_now")

    def __init__(self, data: bytes, counts: tuple[int, int, int], ttls: list[tuple[int, int]]) -> None:
        self.data, self.counts, self.ttls = data, counts, ttls
        self._second, self._now = -1, data

    def at(self, elapsed: float) -> bytes:
        """The sections with TTLs counted down by `elapsed` seconds (recomputed at most once a second)."""
        if not self.ttls:
            return self.data
        elapsed = int(elapsed)
        if elapsed != self._second:
            out = bytearray(self.data)
            for off, ttl in self.ttls:
                PACK_TTL(out, off, ttl - elapsed if ttl > elapsed else 0)
            self._now, self._second = bytes(out), elapsed
        return self._now


class Entry:
    __slots__ = ("full", "plain", "rcode", "flags", "stored", "expires")

    def __init__(self, full: Body, plain: Body, rcode: int, flags: int, stored: float, expires: float) -> None:
        self.full, self.plain, self.rcode, self.flags, self.stored, self.expires = (
            full, plain, rcode, flags, stored, expires)


def _body(rec: DNSRecord, limit: int | None) -> Body:
    packed = rec.pack()
    qend = wire.skip_name(packed, 12) + 4
    counts = (len(rec.rr), len(rec.auth), len(rec.ar))
    ttls = [] if limit is None else [(off - qend, min(t, limit))
                                     for off, t in wire.ttl_offsets(packed, qend, sum(counts))]
    return Body(packed[qend:], counts, ttls)


def make_entry(response: DNSRecord, limit: int | None, ttl: float, flags: int = 0) -> Entry:
    """An entry for this answer, valid `ttl` seconds; limit caps each TTL, None: TTLs never count down."""
    qtype = response.q.qtype

    def keep(rrs, dnssec: bool):
        return [r for r in rrs if r.rtype != QTYPE.OPT and (dnssec or r.rtype not in DNSSEC_TYPES or r.rtype == qtype)]

    full = DNSRecord(header=response.header, questions=response.questions[:1], rr=keep(response.rr, True),
                     auth=keep(response.auth, True), ar=keep(response.ar, True))
    plain = DNSRecord(header=response.header, questions=response.questions[:1], rr=keep(response.rr, False),
                      auth=keep(response.auth, False), ar=keep(response.ar, False))
    body = _body(full, limit)
    same = (len(plain.rr), len(plain.auth), len(plain.ar)) == body.counts
    now = time.monotonic()
    return Entry(body, body if same else _body(plain, limit), response.header.rcode, flags, now, now + ttl)


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
        if response.rr and rcode == RCODE.NOERROR:
            ttl = limit = min(min(r.ttl for r in response.rr), self.max_ttl)
            limit = self.max_ttl
        else:  # negative answer (RFC 2308): the SOA's minimum, bounded
            soa = next((r for r in response.auth if r.rtype == QTYPE.SOA), None)
            ttl = min(soa.ttl, soa.rdata.times[-1]) if soa is not None else 60
            ttl = limit = min(ttl, self.negative_ttl)
        if ttl <= 0 or self.size == 0:
            return None
        entry = make_entry(response, limit, ttl)
        if len(self.entries) >= self.size:
            self._evict(entry.stored)
        self.entries[key] = entry
        return entry

    def _evict(self, now: float) -> None:
        expired = [k for k, e in self.entries.items() if e.expires <= now]
        for key in expired:
            del self.entries[key]
        while len(self.entries) >= self.size:  # oldest insertions first
            del self.entries[next(iter(self.entries))]

    def drop_bare(self, label: bytes) -> None:
        """Forget forwarded answers for the single-label name `label` (it has just become local)."""
        name = bytes((len(label),)) + label + b"\0"
        for key in [k for k in self.entries if k[0] == name]:
            del self.entries[key]

    def clear(self) -> None:
        self.entries.clear()


def render(entry: Entry, query: bytes, q: wire.Query, now: float) -> bytes:
    """The answer for this query: its id, its question as sent (case kept), TTLs counted down, DNSSEC
    records only if the client set DO, our OPT if it sent one."""
    body = entry.full if q.do else entry.plain
    an, ns, ar = body.counts
    flags = wire.QR | wire.RA | (q.flags & wire.RD) | entry.flags | entry.rcode
    opt = (OPT_DO if q.do else OPT_PLAIN) if q.edns else b""
    out = b"".join((wire.HEADER.pack(q.qid, flags, 1, an, ns, ar + q.edns), query[12:q.qend],
                    body.at(now - entry.stored), opt))
    if len(out) > q.udp_size:  # too big for the client's UDP buffer: truncate, it retries over TCP
        out = wire.HEADER.pack(q.qid, flags | wire.TC, 1, 0, 0, q.edns) + query[12:q.qend] + opt
    return out
