"""RTP relay anchoring every call: one socket pair (RTP even port, RTCP port+1) per call leg.

Symmetric RTP with latching: a side sends to the address the first packet came from (so phones behind
NAT work); before that, to the address of its SDP. Each side counts packets, bytes, loss and jitter
(RFC 3550 A.3 / A.8) of what it receives.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import time


class Stats:
    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.forwarded = 0
        self.rtcp = 0
        self.lost_before = 0
        self.reported = self.reported_lost = 0  # what was already added to the service totals
        self._reset_seq()

    def _reset_seq(self) -> None:
        self.ssrc: int | None = None
        self.base = self.max_seq = self.cycles = self.received = 0
        self.transit: float | None = None
        self.jitter = 0.0

    def rtp(self, data: bytes, clock_rate: int) -> None:
        self.packets += 1
        self.bytes += len(data)
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.lost_before += self.lost_now()
            self._reset_seq()
            self.ssrc, self.base, self.max_seq = ssrc, seq, seq
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if 0 < delta < 3000:
                if seq < self.max_seq:
                    self.cycles += 1 << 16
                self.max_seq = seq
        self.received += 1
        arrival = time.monotonic() * clock_rate
        transit = arrival - ts
        if self.transit is not None:
            d = abs(transit - self.transit)
            if d < clock_rate * 10:
                self.jitter += (d - self.jitter) / 16
        self.transit = transit

    def lost_now(self) -> int:
        if self.ssrc is None:
            return 0
        expected = self.cycles + self.max_seq - self.base + 1
        return max(0, expected - self.received)

    def summary(self, clock_rate: int) -> dict:
        lost = self.lost_before + self.lost_now()
        expected = self.packets + lost
        return {"packets": self.packets, "bytes": self.bytes, "forwarded": self.forwarded, "rtcp": self.rtcp,
                "lost": lost, "loss_pct": round(100 * lost / expected, 3) if expected else 0.0,
                "jitter_ms": round(self.jitter * 1000 / clock_rate, 3)}


class _Sock(asyncio.DatagramProtocol):
    def __init__(self, side: "Side", rtcp: bool) -> None:
        self.side, self.rtcp = side, rtcp
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.side.received(data, addr, self.rtcp)

    def error_received(self, exc) -> None:
        pass


class Side:
    """The relay end one party talks to."""

    def __init__(self, relay: "RtpRelay", port: int) -> None:
        self.relay = relay
        self.port = port
        self.rtp: _Sock | None = None
        self.rtcp: _Sock | None = None
        self.other: Side | None = None
        self.peer: tuple[str, int] | None = None
        self.peer_rtcp: tuple[str, int] | None = None
        self.latched = False
        self.latched_rtcp = False
        self.clock_rate = 8000
        self.stats = Stats()

    def set_peer(self, ip: str, port: int, clock_rate: int = 8000) -> None:
        """Where the SDP says this party receives; latching will follow the real source."""
        self.clock_rate = clock_rate
        if ip == "0.0.0.0" or not port:
            return  # on hold (RFC 2543 style) or rejected: keep the latched address
        if self.peer != (ip, port):
            self.peer, self.peer_rtcp = (ip, port), (ip, port + 1)
            self.latched = self.latched_rtcp = False

    def received(self, data: bytes, addr, rtcp: bool) -> None:
        if rtcp:
            self.stats.rtcp += 1
            if not self.latched_rtcp:
                self.peer_rtcp, self.latched_rtcp = (addr[0], addr[1]), True
        else:
            self.stats.rtp(data, self.clock_rate)
            if not self.latched:
                self.peer, self.latched = (addr[0], addr[1]), True
        other = self.other
        if other is None:
            return
        dest = other.peer_rtcp if rtcp else other.peer
        sock = other.rtcp if rtcp else other.rtp
        if dest and sock and sock.transport:
            sock.transport.sendto(data, dest)
            if not rtcp:
                self.stats.forwarded += 1

    def close(self) -> None:
        for s in (self.rtp, self.rtcp):
            if s and s.transport:
                s.transport.close()
        self.relay.in_use.discard(self.port)


class RtpRelay:
    def __init__(self, host: str, port_min: int, port_max: int) -> None:
        self.host = host
        self.port_min = port_min + (port_min % 2)
        self.port_max = port_max
        self.next = self.port_min
        self.in_use: set[int] = set()
        self.sides_opened = 0

    def configure(self, host: str, port_min: int, port_max: int) -> None:
        self.host, self.port_min, self.port_max = host, port_min + (port_min % 2), port_max
        if not self.port_min <= self.next < self.port_max:
            self.next = self.port_min

    async def open(self) -> Side:
        """A new side on the next free even/odd port pair of the range."""
        loop = asyncio.get_running_loop()
        span = max(1, (self.port_max - self.port_min) // 2)
        for _ in range(span):
            port = self.next
            self.next += 2
            if self.next + 1 > self.port_max:
                self.next = self.port_min
            if port in self.in_use:
                continue
            socks = []
            try:
                for p in (port, port + 1):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    socks.append(s)
                    s.bind((self.host, p))
                    s.setblocking(False)
            except OSError:
                for s in socks:
                    s.close()
                continue
            side = Side(self, port)
            side.rtp = _Sock(side, False)
            side.rtcp = _Sock(side, True)
            await loop.create_datagram_endpoint(lambda s=side.rtp: s, sock=socks[0])
            await loop.create_datagram_endpoint(lambda s=side.rtcp: s, sock=socks[1])
            self.in_use.add(port)
            self.sides_opened += 1
            return side
        raise OSError("no free RTP port in the configured range")

    async def pair(self) -> tuple[Side, Side]:
        a = await self.open()
        try:
            b = await self.open()
        except OSError:
            a.close()
            raise
        a.other, b.other = b, a
        return a, b
