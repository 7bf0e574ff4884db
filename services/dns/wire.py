"""Fast paths over raw DNS messages: read a query's question, locate TTLs in a packed answer."""
from __future__ import annotations

import struct

HEADER = struct.Struct("!HHHHHH")
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
OPT = 41
# our OPT record in answers: root name, type 41, UDP size 1232, no extended rcode/flags, no data
OPT_RR = b"\x00" + struct.pack("!HHIH", OPT, 1232, 0, 0)


class Query:
    __slots__ = ("qid", "flags", "qend", "key", "edns", "udp_size", "plain")

    def __init__(self, qid: int, flags: int, qend: int, key: tuple, edns: bool, udp_size: int,
                 plain: bool = True) -> None:
        self.qid, self.flags, self.qend, self.key, self.edns, self.udp_size = qid, flags, qend, key, edns, udp_size
        self.plain = plain  # no EDNS options (a cookie, say): the same bytes will come again


def read_query(data: bytes) -> Query | None:
    """A plain query (one question, optional EDNS OPT) -> Query; anything unusual -> None (slow path)."""
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
    edns, udp_size, plain = False, 512, True
    if ar:
        if end - qend < 11 or data[qend] != 0:
            return None
        rtype, size, _ttl, rdlen = OPT_FIXED(data, qend + 1)
        if rtype != OPT or qend + 11 + rdlen != end:
            return None
        edns, udp_size, plain = True, max(512, min(size, 4096)), rdlen == 0
    elif qend != end:
        return None
    return Query(qid, flags, qend, (data[12:i].lower(), qtype, qclass), edns, udp_size, plain)


QTYPE_CLASS = struct.Struct("!HH").unpack_from
OPT_FIXED = struct.Struct("!HHIH").unpack_from


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
