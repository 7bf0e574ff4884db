"""The pre-login gate in front of Dovecot's login listeners (IMAP, POP3, ManageSieve).

Dovecot 2.3 has no per-address limit before sign-in (mail_max_userip_connections counts signed-in
sessions per user and address). The gate owns the public ports; each connection it admits goes on to
Dovecot's listener on the loopback (BACKEND_HOST, the same port number, `haproxy = yes`) with a PROXY v2
header, so Dovecot still sees the client's address and port (auth_penalty, user+address limits, logs,
plaintext refusal: a proxied connection is secured only by TLS).

Counted per listener: connections not yet signed in, per source address (`per_ip`: one over is reset at
once) and in all (`waiting`: past it the oldest one not signed in is reset, as Dovecot's login processes
do past their client_limit, so a flood from many addresses cannot keep newcomers out). A connection not
signed in within `timeout` seconds is closed. The gate
learns a sign-in from the password check itself: Dovecot's checkpassword helper names the client's
address and port (TCPREMOTEIP/TCPREMOTEPORT, from the PROXY header) and the listener's port
(TCPLOCALPORT) to the auth socket, and a correct password makes `signed_in()` take that connection out of
the pre-login counts. (A connection whose password was right counts as signed in even if Dovecot then
refuses the session, e.g. over mail_max_userip_connections: that needs a valid password, and it stays
under `connections`.) All connections of one listener, signed in or not, are at most `connections` (past
it a new one is reset).

Bytes are not copied through Python: each direction is spliced socket -> pipe -> socket in the kernel
(os.splice, SPLICE_F_MOVE), at most PIPE_BYTES in flight per direction; the event loop only wakes per
chunk. Cost per connection: the second TCP socket to Dovecot and two pipes (6 descriptors).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import resource
import socket
import struct
from dataclasses import dataclass, field

log = logging.getLogger("officebox.mail.prelogin")
BACKEND_HOST = "::1"
PIPE_BYTES = 65536
ACCEPT_BATCH = 64
PROXY_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FDS_PER_CONNECTION = 6
UNREACHABLE_LOG_SECONDS = 60.0


def proxy_header(client: tuple, local: tuple) -> bytes:
    """PROXY protocol v2, command PROXY, TCP over IPv4 or IPv6: client -> local."""
    src, dst = ipaddress.ip_address(client[0]), ipaddress.ip_address(local[0])
    if src.version == 4 and dst.version == 4:
        body = src.packed + dst.packed + struct.pack("!HH", client[1], local[1])
        family = 0x11
    else:
        src6 = src if src.version == 6 else ipaddress.IPv6Address(f"::ffff:{src}")
        dst6 = dst if dst.version == 6 else ipaddress.IPv6Address(f"::ffff:{dst}")
        body = src6.packed + dst6.packed + struct.pack("!HH", client[1], local[1])
        family = 0x21
    return PROXY_SIGNATURE + bytes((0x21, family)) + struct.pack("!H", len(body)) + body


@dataclass
class Limits:
    per_ip: int       # per listener and address, not signed in
    waiting: int      # per listener, not signed in
    connections: int  # per listener, all
    timeout: float    # seconds to sign in


@dataclass
class Listener:
    kind: str
    port: int
    sock: socket.socket
    pre: dict[str, int] = field(default_factory=dict)  # address -> connections not signed in
    waiting: dict = field(default_factory=dict)  # the connections not signed in, oldest first (values None)
    connections: set = field(default_factory=set)
    refused: int = 0
    dropped: int = 0
    admitted: int = 0
    expired: int = 0



class Direction:
    """One way of a connection: src -> pipe -> dst, spliced."""

    def __init__(self, conn: "Connection", src: socket.socket, dst: socket.socket) -> None:
        self.conn, self.src, self.dst = conn, src, dst
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.pending = 0  # bytes in the pipe
        self.eof = False
        self.done = False

    def start(self) -> None:
        self.conn.loop.add_reader(self.src.fileno(), self.readable)

    def readable(self) -> None:
        try:
            n = os.splice(self.src.fileno(), self.pipe_w, PIPE_BYTES - self.pending,
                          flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            return
        except OSError:
            self.conn.close()
            return
        if n == 0:
            self.eof = True
            self.conn.loop.remove_reader(self.src.fileno())
        self.pending += n
        self.flush()

    def flush(self) -> None:
        loop = self.conn.loop
        while self.pending:
            try:
                n = os.splice(self.pipe_r, self.dst.fileno(), self.pending,
                              flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                break
            except OSError:
                self.conn.close()
                return
            self.pending -= n
        if self.pending:  # dst is full: stop reading src until it drains (bounded by the pipe)
            loop.remove_reader(self.src.fileno())
            loop.add_writer(self.dst.fileno(), self.writable)
            return
        if self.eof:
            self.done = True
            with contextlib.suppress(OSError):
                self.dst.shutdown(socket.SHUT_WR)
            self.conn.direction_done()

    def writable(self) -> None:
        self.conn.loop.remove_writer(self.dst.fileno())
        self.flush()
        if not self.pending and not self.eof and not self.conn.closed:
            self.conn.loop.add_reader(self.src.fileno(), self.readable)

    def close(self) -> None:
        for fd in (self.pipe_r, self.pipe_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Connection:
    def __init__(self, gate: "PreloginGate", listener: Listener, client: socket.socket, address: tuple) -> None:
        self.gate, self.listener, self.client = gate, listener, client
        self.loop = gate.loop
        self.ip, self.port = address[0], address[1]
        self.backend: socket.socket | None = None
        self.directions: list[Direction] = []
        self.signed_in = False
        self.closed = False
        self.timer = self.loop.call_later(gate.limits.timeout, self.expire)
        self.task: asyncio.Task | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return self.ip, self.port, self.listener.port

    async def connect(self) -> None:
        try:
            backend = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            self.backend = backend
            backend.setblocking(False)
            backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.wait_for(self.loop.sock_connect(backend, (BACKEND_HOST, self.listener.port)), 10)
            header = proxy_header((self.ip, self.port), self.client.getsockname()[:2])
            await self.loop.sock_sendall(backend, header)
            self.directions = [Direction(self, self.client, backend), Direction(self, backend, self.client)]
        except (OSError, TimeoutError) as exc:
            if not self.closed:
                self.gate.unreachable(self.listener, exc)
                self.close(reset=True)
            return
        except asyncio.CancelledError:
            self.close(reset=True)
            raise
        if self.closed:
            return
        for direction in self.directions:
            direction.start()

    def mark_signed_in(self) -> None:
        if self.signed_in or self.closed:
            return
        self.signed_in = True
        self.timer.cancel()
        self.gate.leave_prelogin(self)

    def expire(self) -> None:
        if not self.signed_in and not self.closed:
            self.listener.expired += 1
            self.close(reset=True)

    def direction_done(self) -> None:
        if all(d.done for d in self.directions):
            self.close()

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        connecting = self.task is not None and not self.task.done() and self.task is not asyncio.current_task()
        socks = [self.client] if connecting else [self.client, self.backend]
        for sock in socks:
            if sock is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                fd = sock.fileno()
                if fd >= 0:
                    self.loop.remove_reader(fd)
                    self.loop.remove_writer(fd)
        for direction in self.directions:
            direction.close()
        if reset:
            with contextlib.suppress(OSError):
                self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for sock in socks:
            if sock is not None:
                sock.close()
        if connecting:  # the backend socket is closed once asyncio's connect has let go of its descriptor
            backend = self.backend
            self.task.add_done_callback(lambda _task: backend is not None and backend.close())
            self.task.cancel()
        self.gate.forget(self)


class PreloginGate:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.limits = Limits(per_ip=20, waiting=200, connections=300, timeout=60.0)
        self.listeners: dict[str, Listener] = {}
        self.by_key: dict[tuple[str, int, int], Connection] = {}
        self.key: tuple | None = None
        self._warned: dict[str, float] = {}

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self, host: str, ports: dict[str, int], limits: Limits) -> None:
        """Listen on `host`:port for each kind (again only if host or ports changed); take `limits`."""
        self.loop = asyncio.get_running_loop()
        self.limits = limits
        key = (host, tuple(sorted(ports.items())))
        if key == self.key:
            return
        await self.close()
        self._raise_fd_limit(len(ports) * limits.connections * FDS_PER_CONNECTION + 1024)
        try:
            for kind, port in ports.items():
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(1024)
                sock.setblocking(False)
                listener = Listener(kind, port, sock)
                self.listeners[kind] = listener
                self.loop.add_reader(sock.fileno(), self._accept, listener)
        except OSError:
            await self.close()
            raise
        self.key = key

    async def close(self) -> None:
        for listener in self.listeners.values():
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(listener.sock.fileno())
            listener.sock.close()
            for conn in list(listener.connections):
                conn.close()
        self.listeners.clear()
        self.by_key.clear()
        self.key = None

    @staticmethod
    def _raise_fd_limit(wanted: int) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))

    # -- connections --------------------------------------------------------------------------
    def _accept(self, listener: Listener) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                client, address = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("%s: no descriptor for a new connection: %s", listener.kind, exc)
                return
            self._admit(listener, client, address)

    def _admit(self, listener: Listener, client: socket.socket, address: tuple) -> None:
        limits, ip = self.limits, address[0]
        if len(listener.waiting) >= limits.waiting and listener.pre.get(ip, 0) < limits.per_ip:
            oldest = next(iter(listener.waiting))
            listener.dropped += 1
            oldest.close(reset=True)
        if (listener.pre.get(ip, 0) >= limits.per_ip or len(listener.waiting) >= limits.waiting
                or len(listener.connections) >= limits.connections):
            listener.refused += 1
            with contextlib.suppress(OSError):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        client.setblocking(False)
        try:
            # the gate forwards what it got at once: Nagle would hold a chunk's tail for the peer's delayed ACK
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, listener, client, address)
        except OSError:
            client.close()
            return
        listener.admitted += 1
        listener.pre[ip] = listener.pre.get(ip, 0) + 1
        listener.waiting[conn] = None
        listener.connections.add(conn)
        self.by_key[conn.key] = conn
        conn.task = self.loop.create_task(conn.connect())

    def leave_prelogin(self, conn: Connection) -> None:
        conn.listener.waiting.pop(conn, None)
        pre = conn.listener.pre
        pre[conn.ip] -= 1
        if pre[conn.ip] <= 0:
            del pre[conn.ip]

    def forget(self, conn: Connection) -> None:
        if not conn.signed_in:
            self.leave_prelogin(conn)
        conn.listener.connections.discard(conn)
        if self.by_key.get(conn.key) is conn:
            del self.by_key[conn.key]

    def unreachable(self, listener: Listener, exc: Exception) -> None:
        """Dovecot's listener behind did not take a connection (not up yet, restarting): logged once a minute."""
        now = self.loop.time()
        if now - self._warned.get(listener.kind, -UNREACHABLE_LOG_SECONDS) >= UNREACHABLE_LOG_SECONDS:
            self._warned[listener.kind] = now
            log.warning("%s: Dovecot's listener on %s is unreachable: %s", listener.kind, BACKEND_HOST, exc)

    def signed_in(self, ip: str, port: int, local_port: int) -> bool:
        """Dovecot accepted the password of the client at ip:port on the listener at local_port."""
        conn = self.by_key.get((ip, port, local_port))
        if conn is None:
            return False
        conn.mark_signed_in()
        return True

    def figures(self) -> dict[str, int]:
        out = {}
        for kind, listener in self.listeners.items():
            out[f"{kind}: not signed in"] = len(listener.waiting)
            out[f"{kind}: refused before sign-in"] = listener.refused
            out[f"{kind}: oldest dropped before sign-in"] = listener.dropped
        return out
