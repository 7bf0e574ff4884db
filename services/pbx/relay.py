"""RTP relay anchoring every call: one socket pair (RTP even port, RTCP port+1) per call leg.

Symmetric RTP with latching: a side sends to the address the first packet came from (so phones behind
NAT work); before that, to the address of its SDP. Each side counts packets, bytes, loss and jitter
(RFC 3550 A.3 / A.8) of what it receives.
"""
from __future__ import annotations

import select
import socket
import struct
import threading
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


class Side:
    """The relay end one party talks to (RTP on an even port, RTCP on the next one)."""

    def __init__(self, relay: "RtpRelay", port: int, rtp: socket.socket, rtcp: socket.socket) -> None:
        self.relay = relay
        self.port = port
        self.rtp_sock, self.rtcp_sock = rtp, rtcp
        self.other: Side | None = None
        self.peer: tuple[str, int] | None = None
        self.peer_rtcp: tuple[str, int] | None = None
        self.latched = False
        self.latched_rtcp = False
        self.clock_rate = 8000
        self.stats = Stats()
        self.closed = False

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
                self.peer_rtcp, self.latched_rtcp = addr, True
        else:
            self.stats.rtp(data, self.clock_rate)
            if not self.latched:
                self.peer, self.latched = addr, True
        other = self.other
        if other is None or other.closed:
            return
        dest = other.peer_rtcp if rtcp else other.peer
        if dest is None:
            return
        try:
            (other.rtcp_sock if rtcp else other.rtp_sock).sendto(data, dest)
        except OSError:
            return  # full buffer or unreachable peer: UDP semantics, the packet is lost
        if not rtcp:
            self.stats.forwarded += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.relay.forget(self)


class RtpRelay:
    """Owns the port range and one forwarding thread (epoll, draining each socket) for all sides.

    The thread keeps the per-packet path off the asyncio loop: no callback and transport layers per
    datagram, and SIP signalling stays responsive while media flows.
    """

    def __init__(self, host: str, port_min: int, port_max: int) -> None:
        self.host = host
        self.port_min = port_min + (port_min % 2)
        self.port_max = port_max
        self.next = self.port_min
        self.in_use: set[int] = set()
        self.sides_opened = 0
        self._fds: dict[int, tuple[Side, socket.socket, bool]] = {}
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False

    def configure(self, host: str, port_min: int, port_max: int) -> None:
        self.host, self.port_min, self.port_max = host, port_min + (port_min % 2), port_max
        if not self.port_min <= self.next < self.port_max:
            self.next = self.port_min

    def _start(self) -> None:
        if self._thread is None:
            self._running = True
            self._thread = threading.Thread(target=self._loop, name="pbx-rtp-relay", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        fds = self._fds
        while self._running:
            try:
                events = self._epoll.poll(0.5)
            except OSError:
                return
            for fd, _ in events:
                entry = fds.get(fd)
                if entry is None:
                    continue
                side, sock, rtcp = entry
                for _ in range(64):  # drain, but let other sockets have their turn
                    try:
                        data, addr = sock.recvfrom(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if side.closed:
                        break
                    side.received(data, addr, rtcp)

    async def open(self) -> Side:
        """A new side on the next free even/odd port pair of the range."""
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
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
                    s.bind((self.host, p))
                    s.setblocking(False)
            except OSError:
                for s in socks:
                    s.close()
                continue
            side = Side(self, port, socks[0], socks[1])
            with self._lock:
                self.in_use.add(port)
                for sock, rtcp in ((socks[0], False), (socks[1], True)):
                    self._fds[sock.fileno()] = (side, sock, rtcp)
                    self._epoll.register(sock.fileno(), select.EPOLLIN)
            self.sides_opened += 1
            self._start()
            return side
        raise OSError("no free RTP port in the configured range")

    def forget(self, side: Side) -> None:
        with self._lock:
            for sock in (side.rtp_sock, side.rtcp_sock):
                fd = sock.fileno()
                if fd >= 0 and self._fds.get(fd, (None,))[0] is side:
                    del self._fds[fd]
                    try:
                        self._epoll.unregister(fd)
                    except OSError:
                        pass
                sock.close()
            self.in_use.discard(side.port)

    async def pair(self) -> tuple[Side, Side]:
        a = await self.open()
        try:
            b = await self.open()
        except OSError:
            a.close()
            raise
        a.other, b.other = b, a
        return a, b

    def close(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        with self._lock:
            for side, sock, _ in list(self._fds.values()):
                side.closed = True
                sock.close()
            self._fds.clear()
            self.in_use.clear()
        self._epoll.close()
