"""SIP over WebSocket (RFC 7118) for the browser softphone: WSS on the box's certificate, path /ws,
subprotocol "sip", Origin checked against the box's own web admin origins.

Each WebSocket message is one SIP message; it reaches the stack like a TCP message, from the flow
("wss", ip, port), so digest authentication, the abuse guard and the registrar treat it the same way.
Requests to a registered browser go back over the connection it registered from (RFC 7118 5.2:
no new connection can reach it; when it closes its bindings are dropped).

Limits: MAX_CONNECTIONS in all, MAX_PER_SOURCE per address, frames of at most MAX_MESSAGE bytes
(a larger one closes the connection with 1009), OPEN_TIMEOUT for the TLS and WebSocket handshakes,
IDLE_SECONDS without a SIP message, OUTBOX messages queued toward a browser that does not read.
Each refusal and drop is counted (`counters`) and logged once with its reason. With a `gateway`
(services/pbx/webrtc), every message's SDP is rewritten on the way in and out, so the rest of the PBX
sees a browser as a plain RTP phone.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from .message import MAX_MESSAGE
from .transport import Dest

log = logging.getLogger("officebox.pbx.ws")
PATH = "/ws"
SUBPROTOCOL = "sip"
MAX_CONNECTIONS = 512
MAX_PER_SOURCE = 16  # a browser needs one per tab
OPEN_TIMEOUT = 10.0
IDLE_SECONDS = 900  # JsSIP refreshes its registration every 600 s
OUTBOX = 256
COUNTERS = ("accepted", "refused_origin", "refused_path", "refused_full", "refused_banned", "oversized",
            "protocol_errors", "idle_closed", "slow_closed")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class _Flow:
    """One browser's connection: its SIP messages in, an ordered outbox toward it."""

    def __init__(self, owner: "WebSocketTransport", conn: ServerConnection) -> None:
        self.owner = owner
        self.conn = conn
        ip, port = conn.remote_address[:2]
        self.dest: Dest = ("wss", ip, port)
        self.last = asyncio.get_running_loop().time()
        self.outbox: deque[bytes] = deque()
        self.wake = asyncio.Event()

    def send(self, data: bytes) -> None:
        if len(self.outbox) >= OUTBOX:
            self.owner.count("slow_closed", f"{self.dest[1]}:{self.dest[2]} does not read its messages: closed")
            self.conn.transport.abort()
            return
        self.outbox.append(data)
        self.wake.set()

    async def write(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.outbox:
                    data = await self.owner.rewrite("outbound", self.outbox.popleft(), self.dest)
                    try:
                        await self.conn.send(data.decode())  # text frames, as browsers send them
                    except UnicodeDecodeError:
                        await self.conn.send(data)
        except ConnectionClosed:
            return  # the reader side counts and cleans up


class WebSocketTransport:
    """The WSS listener of a `Transports`: deliver(data, flow) in, send(data, flow) out."""

    def __init__(self, deliver: Callable[[bytes, Dest], None], on_close: Callable[[Dest], None] | None,
                 allowed: Callable[[str], bool] = lambda ip: True) -> None:
        self.deliver = deliver
        self.on_close = on_close
        self.allowed = allowed  # False: a banned source (the abuse guard)
        self.origins: set[str] = set()
        self.flows: dict[tuple[str, int], _Flow] = {}
        self.per_source: dict[str, int] = {}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.max_connections = MAX_CONNECTIONS
        self.max_per_source = MAX_PER_SOURCE
        self.idle_seconds = IDLE_SECONDS
        self.server: Server | None = None
        self.gateway = None  # the WebRTC gateway (services/pbx/webrtc) rewriting browsers' SDP, if any
        self.ssl: ssl.SSLContext | None = None
        self.port = 0
        self._reaper: asyncio.Task | None = None

    async def start(self, host: str, port: int, context: ssl.SSLContext, origins: Iterable[str]) -> int:
        self.ssl = context
        self.origins = {o.rstrip("/").lower() for o in origins}
        self.server = await serve(
            self._serve, host, port, ssl=context, subprotocols=[SUBPROTOCOL], process_request=self._check,
            max_size=MAX_MESSAGE, max_queue=16, open_timeout=OPEN_TIMEOUT, ping_interval=30, ping_timeout=20,
            close_timeout=2, compression=None, server_header=None)
        self.port = next(iter(self.server.sockets)).getsockname()[1]
        self._reaper = asyncio.create_task(self._reap_idle())
        return self.port

    def reload_certificate(self, cert: Path, key: Path) -> None:
        """A renewed box certificate: new connections get it."""
        if self.ssl is not None:
            self.ssl.load_cert_chain(str(cert), str(key))

    def count(self, what: str, line: str) -> None:
        self.counters[what] += 1
        log.warning("SIP WebSocket: %s", line)

    def _check(self, conn: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        """Path, Origin, abuse guard and room, before the upgrade."""
        ip = conn.remote_address[0]
        origin = (request.headers.get("Origin") or "").rstrip("/").lower()
        if request.path.split("?")[0] != PATH:
            self.count("refused_path", f"{ip} asked for {request.path[:80]!r}: 404")
            return conn.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if origin not in self.origins:
            self.count("refused_origin", f"{ip} from origin {origin[:80]!r}, not the box's own: 403")
            return conn.respond(HTTPStatus.FORBIDDEN, "Forbidden origin\n")
        if not self.allowed(ip):
            self.count("refused_banned", f"{ip} is banned: 403")
            return conn.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        if len(self.flows) >= self.max_connections or self.per_source.get(ip, 0) >= self.max_per_source:
            self.count("refused_full", f"{ip}: no room for another connection: 503")
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections\n")
        return None

    async def _serve(self, conn: ServerConnection) -> None:
        if conn.subprotocol != SUBPROTOCOL:  # RFC 7118 4: a client that does not speak "sip"
            await conn.close(1002, "the sip subprotocol is required")
            return
        flow = _Flow(self, conn)
        key = flow.dest[1:]
        ip = flow.dest[1]
        self.flows[key] = flow
        self.per_source[ip] = self.per_source.get(ip, 0) + 1
        self.counters["accepted"] += 1
        writer = asyncio.create_task(flow.write())
        try:
            async for message in conn:
                flow.last = asyncio.get_running_loop().time()
                data = message.encode() if isinstance(message, str) else message
                if self.allowed(ip):  # a banned source's messages are dropped by the stack, untouched
                    data = await self.rewrite("inbound", data, flow.dest)
                self.deliver(data, flow.dest)
        except ConnectionClosed as exc:
            self._closed_because(flow, exc)
        finally:
            writer.cancel()
            self.flows.pop(key, None)
            left = self.per_source.get(ip, 1) - 1
            if left > 0:
                self.per_source[ip] = left
            else:
                self.per_source.pop(ip, None)
            if self.gateway is not None:
                self.gateway.flow_closed(flow.dest)
            if self.on_close:
                self.on_close(flow.dest)

    async def rewrite(self, way: str, data: bytes, dest: Dest) -> bytes:
        """The gateway's SDP rewrite of one message (unchanged without a gateway, or if the rewrite fails)."""
        if self.gateway is None:
            return data
        try:
            return await getattr(self.gateway, way)(data, dest)
        except Exception:  # a bug in the rewrite must not take the browser's signalling down
            log.exception("WebRTC gateway: %s rewrite failed for %s", way, dest)
            return data

    def _closed_because(self, flow: _Flow, exc: ConnectionClosed) -> None:
        sent = exc.sent
        where = f"{flow.dest[1]}:{flow.dest[2]}"
        if sent is not None and sent.code == 1009:
            self.count("oversized", f"{where} sent a frame over {MAX_MESSAGE} bytes: closed")
        elif sent is not None and sent.code == 1002:
            self.count("protocol_errors", f"{where} broke the WebSocket protocol ({sent.reason}): closed")

    def send(self, data: bytes, dest: Dest, on_error: Callable[[], None] | None = None) -> None:
        flow = self.flows.get(dest[1:])
        if flow is None:  # a browser is reached only over its own connection
            if on_error:
                on_error()
            return
        flow.send(data)

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(60, self.idle_seconds))
            now = asyncio.get_running_loop().time()
            for flow in list(self.flows.values()):
                if now - flow.last > self.idle_seconds:
                    self.count("idle_closed", f"{flow.dest[1]}:{flow.dest[2]} sent nothing for "
                               f"{self.idle_seconds} s: closed")
                    flow.conn.transport.abort()

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 3)
            except TimeoutError:
                pass
        if self.gateway is not None:
            await self.gateway.close()
