"""Fast paths over raw DNS messages: read a query's question, locate TTLs in a packed answer."""
from __future__ import annotations

import struct

HEADER = struct.Struct("!HHHHHH")
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
OPT = 41
CLASS_IN = 1
OUR_UDP_SIZE = 1232
DO_FLAG = 0x8000  # in the OPT record's TTL field
BADVERS = 16  # extended rcode: upper 8 bits in the OPT TTL, lower 4 in the header
OPT_FIXED = struct.Struct("!HHIH")


def opt_rr(do: bool = False, ext_rcode: int = 0) -> bytes:
    """Our OPT record: root name, UDP size 1232, version 0, the DO bit echoed, no options."""
    return b"\x00" + OPT_FIXED.pack(OPT, OUR_UDP_SIZE, (ext_rcode << 24) | (DO_FLAG if do else 0), 0)


class Query:
    __slots__ = ("qid", "flags", "qend", "key", "edns", "udp_size", "plain", "do", "version")

    def __init__(self, qid: int, flags: int, qend: int, key: tuple, edns: bool, udp_size: int,
                 plain: bool = True, do: bool = False, version: int = 0) -> None:
        self.qid, self.flags, self.qend, self.key, self.edns, self.udp_size = qid, flags, qend, key, edns, udp_size
        self.plain = plain  # no EDNS options (a cookie, say): the same bytes will come again
        self.do, self.version = do, version


def read_query(data: bytes) -> Query | None:
    """A plain EDNS(0) or classic query (one question, at most one OPT) -> Query; anything else -> None
    (the slow path decides: FORMERR, BADVERS, NOTIMP...)."""
    if len(data) < 17:
        return None
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:  # QR set, or an opcode other than QUERY
        return None
    i = 12
    try:
        n = data[12]
        while n:
            if n > 63:
                return None
            i += n + 1
            n = data[i]
    except IndexError:
        return None
    i += 1
    end = len(data)
    if i - 12 > 255 or i + 4 > end:
        return None
    qtype, qclass = QTYPE_CLASS(data, i)
    qend = i + 4
    edns, udp_size, plain, do = False, 512, True, False
    if ar:
        if end - qend < 11 or data[qend] != 0:
            return None
        rtype, size, ttl, rdlen = OPT_FIXED.unpack_from(data, qend + 1)
        if rtype != OPT or qend + 11 + rdlen != end or ttl & 0x00FF0000:  # not an OPT, or EDNS version > 0
            return None
        edns, udp_size, plain, do = True, max(512, min(size, 4096)), rdlen == 0, bool(ttl & DO_FLAG)
    elif qend != end:
        return None
    return Query(qid, flags, qend, (data[12:i].lower(), qtype, qclass), edns, udp_size, plain, do)


QTYPE_CLASS = struct.Struct("!HH").unpack_from


def skip_name(data: bytes, i: int) -> int:
    while True:
        n = data[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def ttl_offsets(data: bytes, start: int, count: int) -> list[tuple[int, int]]:
    """(offset of the TTL field, TTL) of `count` resource records packed from `start`."""
    found, i = [], start
    for _ in range(count):
        i = skip_name(data, i)
        _type, _class, ttl, rdlen = struct.unpack_from("!HHIH", data, i)
        found.append((i + 4, ttl))
        i += 10 + rdlen
    return found
