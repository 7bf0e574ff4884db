"""UDP and TCP transports. Every datagram / framed stream message goes to one callback with its source.

A destination is (transport, ip, port) with transport "udp", "tcp" or "wss" (browsers: sip/ws.py).
TCP connections are kept and reused in both directions (the flow a phone behind NAT opened is how we
reach it again). One source address holds at most MAX_TCP_PER_SOURCE of them; when all
MAX_TCP_CONNECTIONS are taken, a new one replaces the connection idle the longest (if idle for
EVICT_IDLE_SECONDS), so no host locks others out. The UDP socket's receive buffer (RECEIVE_BUFFER,
pbx.sip_receive_buffer) holds bursts while the loop is busy.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

from .message import MAX_MESSAGE, ParseError, Uri

log = logging.getLogger("officebox.pbx.transport")
Dest = tuple[str, str, int]
MAX_TCP_CONNECTIONS = 1024
MAX_TCP_PER_SOURCE = 64  # a phone needs one; an office NAT a few dozen
EVICT_IDLE_SECONDS = 30.0
TCP_IDLE_SECONDS = 900
PING, PONG = b"\r\n\r\n", b"\r\n"  # RFC 5626 4.4.1 keep-alive over a connection
# Linux's default (208 KB) holds about 100 datagrams on loopback (each costs its buffer's true size), a
# few tens of ms at full load. 2 MiB holds a few hundred ms, still less than T1: a queued request is
# answered before the phone retransmits it.
RECEIVE_BUFFER = 2 * 1024 * 1024
RMEM_MAX = "/proc/sys/net/core/rmem_max"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: each datagram's arrival time, as a timespec
_TIMESPEC = struct.Struct("qq")
_STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


def rmem_max() -> int | None:
    """net.core.rmem_max: the largest SO_RCVBUF a process without CAP_NET_ADMIN gets."""
    try:
        with open(RMEM_MAX) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a `size` byte receive buffer; returns what the kernel granted (it books twice the request,
    reported here halved). Above net.core.rmem_max, SO_RCVBUFFORCE (CAP_NET_ADMIN) is tried, then the cap
    is logged with the sysctl that lifts it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError as exc:
        log.warning("cannot set the SIP receive buffer to %d bytes: %s", size, exc)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    if granted < size and hasattr(socket, "SO_RCVBUFFORCE"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, size)
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        except OSError:
            pass  # no CAP_NET_ADMIN: rmem_max applies
    if granted < size:
        log.warning("SIP receive buffer: %d bytes asked, %d granted; net.core.rmem_max is %s (raise it: "
                    "sysctl -w net.core.rmem_max=%d), or bursts are dropped by the kernel",
                    size, granted, rmem_max(), size)
    return granted


class _Udp:
    """The UDP socket on the event loop. A wake-up reads the waiting datagrams until the socket is empty
    (asyncio's datagram transport reads one per loop iteration: a poll and a loop pass per message under
    load), at most DRAIN so timers and TCP still get their turn in a flood. Each datagram comes with the time
    it waited in the kernel (the owner's `lag`: how far behind the PBX is). Sending is as asyncio does it:
    at once, or queued in order while the socket buffer is full; errors are logged."""

    DRAIN = 256
    RECV_SIZE = 65536  # larger than any UDP datagram

    def __init__(self, owner: "Transports", sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.receive_buffer = set_receive_buffer(sock, owner.receive_buffer)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.stamped = True
        except OSError:
            self.stamped = False  # no arrival times: the lag reads 0
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self._unsent: deque[tuple[bytes, tuple]] = deque()
        self.loop.add_reader(sock.fileno(), self._readable)

    @classmethod
    async def bind(cls, owner: "Transports", host: str, port: int) -> "_Udp":
        """Like loop.create_datagram_endpoint(local_addr=(host, port)): the first address that binds."""
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        error: OSError = OSError(f"cannot bind {host}:{port}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                sock.bind(address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            return cls(owner, sock)
        raise error

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _readable(self) -> None:
        recvmsg, deliver, size, lag = self.sock.recvmsg, self.owner.deliver, self.RECV_SIZE, 0.0
        space = _STAMP_SPACE if self.stamped else 0
        for _ in range(self.DRAIN):
            if self.closed:
                return
            try:
                data, ancillary, _, addr = recvmsg(size, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp error: %s", exc)
                return
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(payload)
                    lag = max(0.0, time.time() - sec - nsec * 1e-9)
            deliver(data, ("udp", addr[0], addr[1]), lag)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.closed or not data:
            return
        if not self._unsent:
            try:
                self.sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self.loop.add_writer(self.sock.fileno(), self._writable)
            except OSError as exc:
                log.debug("udp error: %s", exc)
                return
        self._unsent.append((bytes(data), addr))

    def _writable(self) -> None:
        while self._unsent:
            data, addr = self._unsent[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp error: %s", exc)
            self._unsent.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())
        self.loop.remove_writer(self.sock.fileno())
        self._unsent.clear()
        self.sock.close()


class _Tcp(asyncio.Protocol):
    def __init__(self, owner: "Transports") -> None:
        self.owner = owner
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.last = 0.0
        self.counted = False  # holds one of its source's MAX_TCP_PER_SOURCE places

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.last = asyncio.get_running_loop().time()
        if not self.owner.admit(self):
            transport.close()
            return
        self.counted = True
        self.owner.tcp[self.peer] = self

    def connection_lost(self, exc) -> None:
        if self.counted:
            self.counted = False
            self.owner.release(self.peer[0])
        if self.peer and self.owner.tcp.get(self.peer) is self:
            del self.owner.tcp[self.peer]
            if self.owner.on_close:
                self.owner.on_close(("tcp", *self.peer))

    def data_received(self, data: bytes) -> None:
        self.last = asyncio.get_running_loop().time()
        self.buf += data
        while True:
            # RFC 5626 keep-alive: a CRLFCRLF ping gets a CRLF pong; stray CRLFs are skipped
            if self.buf.startswith(PING):
                del self.buf[:4]
                self.transport.write(PONG)
                continue
            if PING.startswith(self.buf):
                return  # nothing, or a ping cut in two by the network: wait for the rest
            if self.buf.startswith(PONG):
                del self.buf[:2]
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_MESSAGE:
                    self.owner.deliver(bytes(self.buf), ("tcp", *self.peer))  # 513 if it is a request line
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


def contact_flow(contact: str) -> Dest | None:
    """Where a new connection reaches a registered contact: its address, port (5060) and transport
    (RFC 3263 without DNS); None unless the host is an IP address (no name lookups on the loop)."""
    try:
        uri = Uri.parse(contact)
        socket.inet_aton(uri.host)
    except (ParseError, OSError):
        return None
    transport = (uri.params.get("transport") or "udp").lower()
    if transport not in ("udp", "tcp") or uri.scheme != "sip" or uri.host.count(".") != 3:
        return None
    return (transport, uri.host, uri.port or 5060)


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
        self.per_source: dict[str, int] = {}  # ip -> connections it holds
        self.receive_buffer = RECEIVE_BUFFER  # bytes asked for the UDP socket (before start())
        self.lag = 0.0  # seconds the message being delivered waited in the kernel (UDP; 0 for TCP)
        self.max_connections = MAX_TCP_CONNECTIONS
        self.max_per_source = MAX_TCP_PER_SOURCE
        self.evict_idle = EVICT_IDLE_SECONDS
        self.server: asyncio.AbstractServer | None = None
        self.host = ""
        self.port = 0
        self._tasks: set[asyncio.Task] = set()
        self._reaper: asyncio.Task | None = None
        self.ws = None  # the WebSocket listener (sip/ws.py), when browsers are served
        self.tap: Callable[[bytes, Dest, str], None] | None = None  # sip/trace.py SipTrace.tap, "in"/"out"

    async def start(self, host: str, port: int, tcp: bool = True, receive_buffer: int | None = None) -> int:
        if receive_buffer:
            self.receive_buffer = receive_buffer
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            udp = await _Udp.bind(self, host, port)
            actual = udp.port
            if not tcp:
                break
            try:
                self.server = await loop.create_server(lambda: _Tcp(self), host, actual, reuse_address=True)
                break
            except OSError:
                udp.close()
                if port or attempt == 19:
                    raise
        self.udp = udp
        self.host, self.port = host, actual
        self._reaper = asyncio.create_task(self._reap_idle())
        return actual

    def set_receive_buffer(self, size: int) -> None:
        """A new size for the running UDP socket (a configuration reload)."""
        self.receive_buffer = size
        if self.udp and not self.udp.closed:
            self.udp.receive_buffer = set_receive_buffer(self.udp.sock, size)

    def admit(self, conn: _Tcp) -> bool:
        """Room for one more connection from conn's source (see the module's docstring)."""
        ip = conn.peer[0]
        if self.per_source.get(ip, 0) >= self.max_per_source:
            return False
        if len(self.tcp) >= self.max_connections:
            idlest = min(self.tcp.values(), key=lambda c: c.last)
            if conn.last - idlest.last < self.evict_idle or not idlest.transport:
                return False
            idlest.transport.close()
            del self.tcp[idlest.peer]  # its place is taken at once (connection_lost comes later)
            if self.on_close:
                self.on_close(("tcp", *idlest.peer))
        self.per_source[ip] = self.per_source.get(ip, 0) + 1
        return True

    def release(self, ip: str) -> None:
        left = self.per_source.get(ip, 1) - 1
        if left > 0:
            self.per_source[ip] = left
        else:
            self.per_source.pop(ip, None)

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(60)
            now = asyncio.get_running_loop().time()
            for conn in list(self.tcp.values()):
                if now - conn.last > TCP_IDLE_SECONDS and conn.transport:
                    conn.transport.close()

    def deliver(self, data: bytes, source: Dest, lag: float = 0.0) -> None:
        self.lag = lag
        if self.tap is not None:
            self.tap(data, source, "in")
        try:
            self.on_message(data, source)
        except Exception:  # a bug above must never kill the transport
            log.exception("error handling a message from %s", source)

    def send(self, data: bytes, dest: Dest, on_error: Callable[[], None] | None = None) -> None:
        proto, ip, port = dest
        if self.tap is not None:
            self.tap(data, dest, "out")
        if proto == "wss":
            if self.ws is not None:
                self.ws.send(data, dest, on_error)
            elif on_error:
                on_error()
            return
        if proto == "udp":
            if self.udp:
                self.udp.sendto(data, (ip, port))  # errors are logged (as asyncio's transport did)
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
            if not proto.counted:
                raise OSError("no room for another connection")
            proto.transport.write(data)
        except (TimeoutError, OSError):
            if on_error:
                on_error()

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self.udp:
            self.udp.close()
        if self.ws is not None:
            await self.ws.close()
        for conn in list(self.tcp.values()):
            if conn.transport:
                conn.transport.close()
        if self.server:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2)
            except TimeoutError:
                pass
