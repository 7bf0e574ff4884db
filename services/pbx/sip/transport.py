"""UDP and TCP transports. Every datagram / framed stream message goes to one callback with its source.

A destination is (transport, ip, port) with transport "udp" or "tcp". TCP connections are kept and
reused in both directions (the flow a phone behind NAT opened is how we reach it again).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .message import MAX_MESSAGE

log = logging.getLogger("officebox.pbx.transport")
Dest = tuple[str, str, int]
MAX_TCP_CONNECTIONS = 1024
TCP_IDLE_SECONDS = 900


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: "Transports") -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.owner.deliver(data, ("udp", addr[0], addr[1]))

    def error_received(self, exc) -> None:
        log.debug("udp error: %s", exc)


class _Tcp(asyncio.Protocol):
    def __init__(self, owner: "Transports") -> None:
        self.owner = owner
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.last = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        if len(self.owner.tcp) >= MAX_TCP_CONNECTIONS:
            transport.close()
            return
        self.owner.tcp[self.peer] = self
        self.last = asyncio.get_running_loop().time()

    def connection_lost(self, exc) -> None:
        if self.peer and self.owner.tcp.get(self.peer) is self:
            del self.owner.tcp[self.peer]
            if self.owner.on_close:
                self.owner.on_close(("tcp", *self.peer))

    def data_received(self, data: bytes) -> None:
        self.last = asyncio.get_running_loop().time()
        self.buf += data
        while True:
            # RFC 5626 keep-alive: a CRLFCRLF ping gets a CRLF pong; stray CRLFs are skipped
            if self.buf.startswith(b"\r\n\r\n"):
                del self.buf[:4]
                self.transport.write(b"\r\n")
                continue
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_MESSAGE:
                    self.transport.close()
                    self.buf.clear()
                return
            length = _content_length(bytes(self.buf[:end]))
            if length is None or end + 4 + length > MAX_MESSAGE:
                # unframeable: hand it over for a 400 and drop the connection
                self.owner.deliver(bytes(self.buf[: end + 4]), ("tcp", *self.peer))
                self.buf.clear()
                self.transport.close()
                return
            total = end + 4 + length
            if len(self.buf) < total:
                return
            msg = bytes(self.buf[:total])
            del self.buf[:total]
            self.owner.deliver(msg, ("tcp", *self.peer))


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            value = value.strip()
            return int(value) if value.isdigit() and len(value) < 7 else None
    return 0


class Transports:
    def __init__(self, on_message: Callable[[bytes, Dest], None],
                 on_close: Callable[[Dest], None] | None = None) -> None:
        self.on_message = on_message
        self.on_close = on_close
        self.udp: _Udp | None = None
        self.tcp: dict[tuple[str, int], _Tcp] = {}
        self.server: asyncio.AbstractServer | None = None
        self.host = ""
        self.port = 0
        self._tasks: set[asyncio.Task] = set()
        self._reaper: asyncio.Task | None = None

    async def start(self, host: str, port: int, tcp: bool = True) -> int:
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            transport, proto = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(host, port))
            actual = transport.get_extra_info("sockname")[1]
            if not tcp:
                break
            try:
                self.server = await loop.create_server(lambda: _Tcp(self), host, actual, reuse_address=True)
                break
            except OSError:
                transport.close()
                if port or attempt == 19:
                    raise
        self.udp = proto
        self.host, self.port = host, actual
        self._reaper = asyncio.create_task(self._reap_idle())
        return actual

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(60)
            now = asyncio.get_running_loop().time()
            for conn in list(self.tcp.values()):
                if now - conn.last > TCP_IDLE_SECONDS and conn.transport:
                    conn.transport.close()

    def deliver(self, data: bytes, source: Dest) -> None:
        try:
            self.on_message(data, source)
        except Exception:  # a bug above must never kill the transport
            log.exception("error handling a message from %s", source)

    def send(self, data: bytes, dest: Dest, on_error: Callable[[], None] | None = None) -> None:
        proto, ip, port = dest
        if proto == "udp":
            if self.udp and self.udp.transport:
                try:
                    self.udp.transport.sendto(data, (ip, port))
                except OSError:
                    if on_error:
                        on_error()
            return
        conn = self.tcp.get((ip, port))
        if conn and conn.transport and not conn.transport.is_closing():
            conn.transport.write(data)
            return
        task = asyncio.get_running_loop().create_task(self._connect_send(data, ip, port, on_error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_send(self, data: bytes, ip: str, port: int, on_error) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(loop.create_connection(lambda: _Tcp(self), ip, port), 5)
            proto.transport.write(data)
        except (TimeoutError, OSError):
            if on_error:
                on_error()

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self.udp and self.udp.transport:
            self.udp.transport.close()
        for conn in list(self.tcp.values()):
            if conn.transport:
                conn.transport.close()
        if self.server:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2)
            except TimeoutError:
                pass
