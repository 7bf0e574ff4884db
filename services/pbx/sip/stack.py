"""Transaction layer (RFC 3261 section 17) over the transports, with timers A, B, D, E, F, G, H, I, J, K.

The transaction user (TU) implements `on_request(tx, request)`, `on_ack(request)`, `on_cancel(tx)` and
`on_stray_response(response)`; optionally `on_flow_closed(flow)` (a TCP connection closed) and
`on_malformed(source, reason)` (a message that could not be parsed: an abuse guard counts these).
Responses to requests always go back to the source of the request (symmetric response routing,
RFC 3581 for UDP; the same connection for TCP).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from . import message as sipmsg
from .message import MAGIC, ParseError, Request, Response, Via, new_branch, new_tag, response_to
from .timers import TimerQueues
from .transport import Dest, Transports

log = logging.getLogger("officebox.pbx.sip")
LOCAL_IP_TTL = 30.0  # seconds a peer -> our address lookup is trusted
SUPPORTED = "timer"  # option tags we implement (RFC 3261 20.37): session timers (RFC 4028); no 100rel, outbound
SUPPORTED_ON = ("INVITE", "OPTIONS")  # requests whose 2xx (and our own such requests) carry Supported
TERMINATED_HERE = ("REGISTER", "OPTIONS")  # answered by the PBX itself: Max-Forwards 0 is no loop
# RFC 3261 17.2.1: an INVITE gets 100 Trying unless the TU answers within 200 ms. It mostly answers at once
# (407, 180 from a local phone, 486): the 100 waits TRYING_DELAY and is sent only if nothing else was.
TRYING_DELAY = 0.1
# Overload: a new INVITE or REGISTER that waited longer than OVERLOAD_LAG in the socket (the PBX is that far
# behind, and phones retransmit after T1) gets 503 with Retry-After instead of a call: cheap, and it keeps
# retransmissions from snowballing. Dialogs in progress (ACK, BYE, responses) are still served.
OVERLOAD_LAG = 0.2
SHED_METHODS = ("INVITE", "REGISTER")
RETRY_AFTER = "5"
MAX_SERVER_TXS = 4000  # server transactions awaiting a final response; beyond: 503 + Retry-After, stateless
# Answered transactions stay only to absorb retransmissions (timer J / H: 32 s on UDP), so at hundreds of
# calls per second they are tens of thousands: past MAX_ANSWERED_TXS the oldest answered one ends early.
MAX_ANSWERED_TXS = 30000


class TransactionUser(Protocol):
    def on_request(self, tx: "ServerTx", request: Request) -> None: ...
    def on_ack(self, request: Request) -> None: ...
    def on_cancel(self, tx: "ServerTx") -> None: ...
    def on_stray_response(self, response: Response) -> None: ...
    def allow(self, source: Dest, request: Request | None) -> bool: ...


class Timers:
    T1 = float(os.environ.get("OFFICEBOX_SIP_T1", "0.5"))  # RFC 3261's 500 ms; lab tests of a separate
    # PBX process shorten it (Timer B, 64*T1, is how long a carrier that never answers takes to be a 408)
    T2 = 4.0
    T4 = 5.0


def server_key(req: Request) -> tuple:
    via = req._via()
    method = "INVITE" if req.method in ("ACK", "CANCEL") else req.method
    if via.branch.startswith(MAGIC):
        return (via.branch, via.host, via.port, method)
    tag = req.from_tag
    return (req.call_id, req.cseq[0], tag, via.host, via.port, method)


class _Transaction:
    """Timers of a transaction (all cancelled when it ends) and its entry in the stack's table."""

    key: tuple
    state: str
    _timers: list

    def _table(self) -> dict:
        raise NotImplementedError

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        self._timers.append(self.stack.timerq.call_later(delay, fn))

    def _cancel_timers(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()

    def _terminate(self) -> None:
        self._cancel_timers()
        self.state = "terminated"
        table = self._table()
        if table.get(self.key) is self:
            del table[self.key]


class ServerTx(_Transaction):
    def __init__(self, stack: "SipStack", request: Request, dest: Dest) -> None:
        self.stack = stack
        self.request = request
        self.dest = dest
        self.key = server_key(request)
        self.invite = request.method == "INVITE"
        self.state = "proceeding" if self.invite else "trying"
        self.last: bytes | None = None
        self.final: Response | None = None
        self.cancelled = False
        self.to_tag: str | None = None  # our tag for this request's responses (the TU may set it early)
        self._timers: list = []
        self.reliable = dest[0] != "udp"
        self.open = True  # no final response yet (counted in the stack's open_server_txs)
        stack.open_server_txs += 1

    def _answered(self) -> None:
        if self.open:
            self.open = False
            self.stack.open_server_txs -= 1
            self.stack.answered(self)

    def _terminate(self) -> None:
        if self.open:
            self.open = False
            self.stack.open_server_txs -= 1
        super()._terminate()

    def respond(self, resp: Response) -> None:
        if self.state in ("completed", "confirmed", "terminated", "accepted"):
            return
        if self.stack.server_header and not resp.get("Server"):
            resp.add("Server", self.stack.server_header)
        if 200 <= resp.status < 300 and self.request.method in SUPPORTED_ON and resp.get("Supported") is None:
            resp.add("Supported", SUPPORTED)
        if self.invite and self.to_tag is None and resp.status > 100:
            self.to_tag = resp.to_tag
        self.last = resp.to_bytes()
        self.stack.transports.send(self.last, self.dest)
        if resp.status < 200:
            self.state = "proceeding"
            return
        self.final = resp
        self._answered()
        if self.invite and resp.status < 300:
            # 2xx retransmission is the dialog's job; stay around to absorb INVITE retransmissions (RFC 6026)
            self.state = "accepted"
            self._later(64 * self.stack.timers.T1, self._terminate)
            return
        self.state = "completed"
        t1 = self.stack.timers.T1
        if self.invite:
            if not self.reliable:
                self._retransmit_g(t1)
            self._later(64 * t1, self._terminate)  # timer H
        else:
            self._later(0 if self.reliable else 64 * t1, self._terminate)  # timer J

    def reply(self, status: int, reason: str | None = None, to_tag: str | None = None, **headers: str) -> Response:
        resp = response_to(self.request, status, reason, to_tag)
        for name, value in headers.items():
            resp.add(name.replace("_", "-"), value)
        self.respond(resp)
        return resp

    def trying_unless_answered(self) -> None:
        self._later(TRYING_DELAY, self._trying)

    def _trying(self) -> None:
        if self.state == "proceeding" and self.last is None:
            self.reply(100)

    def _retransmit_g(self, interval: float) -> None:
        def fire() -> None:
            if self.state == "completed" and self.last:
                self.stack.transports.send(self.last, self.dest)
                self._retransmit_g(min(2 * interval, self.stack.timers.T2))
        self._later(interval, fire)

    def retransmission(self, req: Request) -> None:
        if req.method == "ACK":
            if self.invite and self.state == "completed":
                self.state = "confirmed"
                self._cancel_timers()
                self._later(0 if self.reliable else self.stack.timers.T4, self._terminate)  # timer I
            return
        if self.last and self.state in ("proceeding", "completed", "accepted"):
            self.stack.transports.send(self.last, self.dest)

    def _table(self) -> dict:
        return self.stack.server_txs


class ClientTx(_Transaction):
    def __init__(self, stack: "SipStack", request: Request, dest: Dest,
                 on_response: Callable[[Response], None], timeout: float | None = None) -> None:
        self.stack = stack
        self.request = request
        self.dest = dest
        self.on_response = on_response
        self.invite = request.method == "INVITE"
        self.branch = request.branch
        self.key = (self.branch, request.method)
        self.state = "calling" if self.invite else "trying"
        self.reliable = dest[0] != "udp"
        self.data = request.to_bytes()
        self.cancel_pending = False
        self.cancel_reason: str | None = None
        self.cancel_tx: ClientTx | None = None
        self.got_provisional = False
        self._timers: list = []
        self._timeout = timeout

    def start(self) -> None:
        self.stack.client_txs[self.key] = self
        self._send()
        t1 = self.stack.timers.T1
        if not self.reliable:
            self._retransmit(t1)
        self._later(self._timeout or 64 * t1, self._timed_out)  # timer B / F

    def _send(self) -> None:
        self.stack.transports.send(self.data, self.dest, self._transport_error)

    def _retransmit(self, interval: float) -> None:
        def fire() -> None:
            if self.state in ("calling", "trying") or (not self.invite and self.state == "proceeding"):
                self._send()
                nxt = 2 * interval if self.invite else min(2 * interval, self.stack.timers.T2)
                self._retransmit(nxt)
        self._later(interval, fire)

    def _timed_out(self) -> None:
        if self.state in ("calling", "trying", "proceeding") and not (self.invite and self.state == "proceeding"):
            self._fail(408, "Request Timeout")

    def _transport_error(self) -> None:
        if self.state in ("calling", "trying", "proceeding"):
            self._fail(503, "Transport Error")

    def _fail(self, status: int, reason: str) -> None:
        resp = response_to(self.request, status, reason)
        resp.source = None
        self._terminate()
        self._deliver(resp)

    def _deliver(self, resp: Response) -> None:
        try:
            self.on_response(resp)
        except Exception:
            log.exception("transaction user failed on %r", resp)

    def receive(self, resp: Response) -> None:
        if self.state in ("terminated",):
            return
        if resp.status < 200:
            if self.state in ("calling", "trying", "proceeding"):
                first = not self.got_provisional
                self.got_provisional = True
                if self.invite:
                    self._cancel_timers()  # no more A / B once something answered
                self.state = "proceeding"
                if first and self.cancel_pending:
                    self.cancel()
                self._deliver(resp)
            return
        if self.invite and resp.status < 300:
            if self.state != "accepted":
                self._cancel_timers()
                self.state = "accepted"  # RFC 6026: pass 2xx retransmissions up for 64*T1
                self._later(64 * self.stack.timers.T1, self._terminate)
            self._deliver(resp)
            return
        if self.state == "completed":
            if self.invite:
                self.stack.transports.send(self._ack_for(resp).to_bytes(), self.dest)
            return
        if self.state == "accepted":
            return
        self._cancel_timers()
        self.state = "completed"
        t1 = self.stack.timers.T1
        if self.invite:
            self.stack.transports.send(self._ack_for(resp).to_bytes(), self.dest)
            self._later(0 if self.reliable else 64 * t1, self._terminate)  # timer D
        else:
            self._later(0 if self.reliable else self.stack.timers.T4, self._terminate)  # timer K
        self._deliver(resp)

    def _ack_for(self, resp: Response) -> Request:
        ack = Request("ACK", self.request.uri)
        ack.add("Via", self.request.get("Via") or "")
        for route in self.request.get_all("Route"):
            ack.add("Route", route)
        ack.add("Max-Forwards", "70")
        ack.add("From", self.request.get("From") or "")
        ack.add("To", resp.get("To") or "")
        ack.add("Call-ID", self.request.call_id)
        ack.add("CSeq", f"{self.request.cseq[0]} ACK")
        return ack

    def cancel(self, reason: str | None = None) -> None:
        """CANCEL this INVITE (RFC 3261 9.1): only once a provisional response arrived. `reason`: a Reason
        header value (RFC 3326), e.g. that another fork answered."""
        if not self.invite or self.cancel_tx or self.state not in ("calling", "proceeding"):
            return
        if reason:
            self.cancel_reason = reason
        if not self.got_provisional:
            self.cancel_pending = True
            return
        req = Request("CANCEL", self.request.uri)
        req.add("Via", self.request.get("Via") or "")
        for route in self.request.get_all("Route"):
            req.add("Route", route)
        req.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            req.add(name, self.request.get(name) or "")
        req.add("CSeq", f"{self.request.cseq[0]} CANCEL")
        if self.cancel_reason:
            req.add("Reason", self.cancel_reason)
        self.cancel_tx = self.stack.send_request(req, self.dest, lambda r: None)
        # if the callee never answers the CANCEL with 487, give up after timer B anyway
        self._later(64 * self.stack.timers.T1, lambda: self._fail(408, "Request Timeout")
                    if self.state == "proceeding" else None)

    def _table(self) -> dict:
        return self.stack.client_txs


class SipStack:
    def __init__(self, tu: TransactionUser, server_header: str = "") -> None:
        self.tu = tu
        self.timers = Timers()
        self.timerq = TimerQueues()  # where transaction and dialog timers wait
        self.transports = Transports(self._on_data, self._on_flow_closed)
        self.server_txs: dict[tuple, ServerTx] = {}
        self.max_server_txs = MAX_SERVER_TXS
        self.open_server_txs = 0
        self.max_answered_txs = MAX_ANSWERED_TXS
        self._answered_txs: deque[ServerTx] = deque()  # oldest answer first
        self.client_txs: dict[tuple, ClientTx] = {}
        self.server_header = server_header  # Server / User-Agent value; empty: none (no fingerprint)
        self.counters = {"received": 0, "malformed": 0, "dropped": 0, "sent_requests": 0, "shed": 0}
        self._local_ip_cache: dict[str, tuple[str, float]] = {}  # peer -> (our address, until)
        self.public_ip: str | None = None  # what peers outside see when the box is behind another router
        self.public_peers: frozenset[str] = frozenset()  # trunk peers: they are outside whatever their address

    async def start(self, host: str, port: int, tcp: bool = True, receive_buffer: int | None = None) -> int:
        return await self.transports.start(host, port, tcp, receive_buffer)

    async def start_ws(self, host: str, port: int, context, origins) -> int:
        """Also serve SIP over WebSocket (browsers), through the same guard (RFC 7118; sip/ws.py)."""
        from .ws import WebSocketTransport
        ws = WebSocketTransport(self.transports.deliver, self._on_flow_closed,
                                lambda ip: self.tu.allow(("wss", ip, 0), None))
        actual = await ws.start(host, port, context, origins)
        self.transports.ws = ws
        return actual

    async def close(self) -> None:
        for tx in list(self.server_txs.values()):
            tx._terminate()
        for ctx in list(self.client_txs.values()):
            ctx._terminate()
        self.timerq.close()
        await self.transports.close()

    @property
    def port(self) -> int:
        return self.transports.port

    def outside(self, peer_ip: str) -> bool:
        """A peer that reaches us through the router in front of the box (public_ip)."""
        if self.public_ip is None:
            return False
        if peer_ip in self.public_peers:
            return True
        try:
            return ipaddress.IPv4Address(peer_ip).is_global
        except ValueError:
            return False

    def local_ip(self, peer_ip: str) -> str:
        """The address this box is reachable at from `peer_ip` (for Via, Contact and SDP)."""
        if self.outside(peer_ip):
            return self.public_ip
        host = self.transports.host
        if host not in ("0.0.0.0", ""):
            return host
        now = time.monotonic()
        cached = self._local_ip_cache.get(peer_ip)
        if cached is None or cached[1] < now:  # looked up again now and then: a DHCP WAN address changes
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.connect((peer_ip, 9))
                cached = (s.getsockname()[0], now + LOCAL_IP_TTL)
            except OSError:
                cached = ("127.0.0.1", now + LOCAL_IP_TTL)
            finally:
                s.close()
            if len(self._local_ip_cache) > 10000:
                self._local_ip_cache.clear()
            self._local_ip_cache[peer_ip] = cached
        return cached[0]

    # -- sending ----------------------------------------------------------------------------------
    def via_for(self, dest: Dest, branch: str | None = None) -> str:
        ws = self.transports.ws
        port = ws.port if dest[0] == "wss" and ws is not None else self.port
        return f"SIP/2.0/{dest[0].upper()} {self.local_ip(dest[1])}:{port};branch={branch or new_branch()};rport"

    def send_request(self, req: Request, dest: Dest, on_response: Callable[[Response], None],
                     timeout: float | None = None) -> ClientTx:
        if not req.get("Via"):
            req.add("Via", self.via_for(dest), first=True)
        if not req.get("Max-Forwards"):
            req.add("Max-Forwards", "70")
        if self.server_header and not req.get("User-Agent"):
            req.add("User-Agent", self.server_header)
        if req.method in SUPPORTED_ON and req.get("Supported") is None:
            req.add("Supported", SUPPORTED)
        tx = ClientTx(self, req, dest, on_response, timeout)
        self.counters["sent_requests"] += 1
        tx.start()
        return tx

    async def request(self, req: Request, dest: Dest, timeout: float | None = None) -> Response:
        """Send a non-INVITE request and wait for its final response (408 on timeout)."""
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def done(resp: Response) -> None:
            if resp.status >= 200 and not fut.done():
                fut.set_result(resp)
        self.send_request(req, dest, done, timeout)
        return await fut

    def send_stateless(self, msg: sipmsg.Message, dest: Dest) -> None:
        if isinstance(msg, Request):
            if not msg.get("Via"):
                msg.add("Via", self.via_for(dest), first=True)
            if not msg.get("Max-Forwards"):
                msg.add("Max-Forwards", "70")  # mandatory in every request, our ACKs too (RFC 3261 8.1.1.6)
        self.transports.send(msg.to_bytes(), dest)

    def answered(self, tx: ServerTx) -> None:
        """`tx` sent its final response: it stays for retransmissions, up to max_answered_txs of them."""
        done = self._answered_txs
        while done and done[0].state == "terminated":
            done.popleft()
        done.append(tx)
        if len(done) > self.max_answered_txs:
            done.popleft()._terminate()

    # -- receiving --------------------------------------------------------------------------------
    def _on_flow_closed(self, flow: Dest) -> None:
        handler = getattr(self.tu, "on_flow_closed", None)
        if handler:
            self._safe(handler, flow)

    def _on_data(self, data: bytes, source: Dest) -> None:
        self.counters["received"] += 1
        if not data.strip(b"\r\n"):
            return  # keep-alive
        if not self.tu.allow(source, None):
            self.counters["dropped"] += 1
            return
        try:
            msg = sipmsg.parse(data)
        except ParseError as exc:
            self.counters["malformed"] += 1
            handler = getattr(self.tu, "on_malformed", None)
            if handler:
                self._safe(handler, source, exc.reason)
            self._bad_request(exc, source)
            return
        msg.source = source
        if isinstance(msg, Request):
            self._on_request(msg, source)
        else:
            self._on_response(msg)

    def _bad_request(self, exc: ParseError, source: Dest) -> None:
        partial = exc.partial
        if not isinstance(partial, Request) or partial.method == "ACK":
            return
        try:
            if not (partial.get("Via") and partial.get("CSeq") and partial.get("Call-ID")):
                return
            Via.parse(partial.get("Via") or "")
            resp = Response(exc.status)
            for name in sipmsg.ANSWER_HEADERS:
                for value in partial.get_all(name):
                    if name == "To" and ";tag=" not in value.lower():
                        value += f";tag={new_tag()}"  # every final response has one (RFC 3261 8.2.6.2)
                    resp.add(name, value)
            if exc.status == 416:
                resp.reason = "Unsupported URI Scheme"
            resp.add("Warning", '399 - "' + exc.reason.replace('"', "'")[:80] + '"')
            self.transports.send(resp.to_bytes(), source)
        except (ParseError, ValueError):
            return

    def _on_request(self, req: Request, source: Dest) -> None:
        via = req._via()
        if via.host != source[1] or "rport" in via.params:  # else the Via stays as it came
            via = via.copy()
            via.params["received"] = source[1]
            if "rport" in via.params:
                via.params["rport"] = str(source[2])
            req.replace_top_via(via)
        if not self.tu.allow(source, req):
            self.counters["dropped"] += 1
            return
        key = server_key(req)
        if req.method == "CANCEL":
            tx = self.server_txs.get(key)
            ctx = ServerTx(self, req, source)
            ctx.key = key[:-1] + ("CANCEL",)
            if tx is None or not tx.invite:
                ctx.reply(481, to_tag=new_tag())
                return
            ctx.reply(200, to_tag=tx.to_tag or new_tag())  # the tag of the INVITE's responses (RFC 3261 9.2)
            if tx.state == "proceeding" and not tx.cancelled:
                tx.cancelled = True
                self._safe(self.tu.on_cancel, tx)
            return
        tx = self.server_txs.get(key)
        if tx is not None:
            tx.retransmission(req)
            return
        if req.method == "ACK":
            self._safe(self.tu.on_ack, req)
            return
        if self.open_server_txs >= self.max_server_txs:
            self.counters["overloaded"] = self.counters.get("overloaded", 0) + 1
            busy = response_to(req, 503, to_tag=new_tag())
            busy.add("Retry-After", RETRY_AFTER)
            self.send_stateless(busy, source)
            return
        tx = ServerTx(self, req, source)
        self.server_txs[key] = tx
        if self.transports.lag > OVERLOAD_LAG and req.method in SHED_METHODS and not req.to_tag:
            self.counters["shed"] += 1
            tx.reply(503, to_tag=new_tag(), Retry_After=RETRY_AFTER)
            return
        if req.max_forwards == 0 and req.method not in TERMINATED_HERE and not req.to_tag:
            tx.reply(483, to_tag=new_tag())  # it would go on to another hop: a loop (RFC 3261 16.3)
            return
        if tx.invite:
            if self.transports.lag > TRYING_DELAY / 2:
                tx.reply(100)  # behind already: a late 100 would have the caller retransmit
            else:
                tx.trying_unless_answered()
        try:
            self.tu.on_request(tx, req)
        except Exception:
            log.exception("error handling %r", req)
            tx.reply(500, to_tag=tx.to_tag or new_tag())

    def _on_response(self, resp: Response) -> None:
        try:
            key = (resp.branch, resp.cseq[1])
        except (ParseError, ValueError):
            return
        tx = self.client_txs.get(key)
        if tx is not None:
            tx.receive(resp)
        else:
            self._safe(self.tu.on_stray_response, resp)

    def _safe(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("transaction user failed")
