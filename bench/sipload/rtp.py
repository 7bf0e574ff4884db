"""RTP streams for the media load: G.711 (PCMU) 20 ms packets out, loss and jitter in (RFC 3550).

One `Stream` is one UDP socket: `tick(k)` sends packet number k to `remote`; every packet received is
counted and feeds the interarrival jitter estimate J += (|D| - J) / 16, D being the difference of
relative transit times of consecutive packets, in timestamp units (8 kHz), reported in ms.
`pump(streams, seconds)` ticks every stream every 20 ms on one schedule (no drift: packet k is due
at start + k * 20 ms; a late tick is sent late, which shows up as jitter at the receiver).
"""
from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time

PTIME = 0.020
SAMPLES = 160          # 20 ms at 8 kHz
CLOCK = 8000
PAYLOAD = bytes([0xFF]) * SAMPLES   # PCMU silence-ish
HEADER = struct.Struct("!BBHII")
RCVBUF = 1 << 20       # a scheduling hiccup of the generator must not drop packets (it would count as loss)


class Stream:
    """A non-blocking UDP socket read by a loop reader that drains every queued datagram at once."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.remote: tuple[str, int] | None = None
        self.ssrc = secrets.randbits(32)
        self.seq0 = secrets.randbits(16)
        self.ts0 = secrets.randbits(32)
        self.sent = 0
        self.received = 0
        self.bad = 0
        self.jitter = 0.0          # timestamp units
        self.max_jitter = 0.0
        self._transit: float | None = None
        self._packet = bytearray(HEADER.size + SAMPLES)
        self._packet[HEADER.size:] = PAYLOAD
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> Stream:
        return cls(host)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _readable(self) -> None:
        recv = self.sock.recv
        while True:
            try:
                data = recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:        # ICMP error reported on the socket: skip it
                continue
            self.datagram_received(data, None)

    def tick(self, k: int) -> None:
        if self.remote is None:
            return
        HEADER.pack_into(self._packet, 0, 0x80, 0, (self.seq0 + k) & 0xFFFF,
                         (self.ts0 + k * SAMPLES) & 0xFFFFFFFF, self.ssrc)
        try:
            self.sock.sendto(self._packet, self.remote)
        except OSError:            # full buffer or ICMP error: counted as sent, so it shows up as loss
            pass
        self.sent += 1

    def datagram_received(self, data: bytes, addr) -> None:
        arrival = time.perf_counter() * CLOCK
        if len(data) < HEADER.size or data[0] >> 6 != 2:
            self.bad += 1
            return
        self.received += 1
        transit = arrival - struct.unpack_from("!I", data, 4)[0]
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < CLOCK * 60:     # ignore timestamp wrap-around
                self.jitter += (d - self.jitter) / 16
                self.max_jitter = max(self.max_jitter, self.jitter)
        self._transit = transit

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000 / CLOCK


async def pump(streams: list[Stream], seconds: float) -> float:
    """Send on every stream every 20 ms for `seconds`; returns the worst tick lateness in ms."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    worst = 0.0
    for k in range(int(seconds / PTIME)):
        due = start + k * PTIME
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            worst = max(worst, -delay)
        for stream in streams:
            stream.tick(k)
    return worst * 1000
