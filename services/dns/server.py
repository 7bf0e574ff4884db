"""The DNS server: UDP (drained straight from the socket, cache hits answered inline) and TCP."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import time

from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from appliance.aio import close_watched
from services.dns import wire
from services.dns.cache import Cache, Entry, render
from services.dns.forwarder import Forwarder, UpstreamError
from services.dns.zone import LocalZone

log = logging.getLogger("officebox.dns")
MAX_PENDING = 1000
TCP_IDLE = 10.0
MAX_TCP = 64
MEMO_SIZE = 20000


def _error_reply(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply (FORMERR/NOTIMP/REFUSED) to a message we will not parse further."""
    if len(data) < 12 or data[2] & 0x80:  # too short to answer, or itself a response
        return None
    qid, flags = struct.unpack_from("!HH", data)
    return wire.HEADER.pack(qid, wire.QR | (flags & (0x7800 | wire.RD)) | rcode, 0, 0, 0, 0)


class DnsServer:
    def __init__(self, zone: LocalZone, cache: Cache, forwarder: Forwarder,
                 allowed: list[ipaddress.IPv4Network]) -> None:
        self.zone, self.cache, self.forwarder = zone, cache, forwarder
        self.allowed = allowed
        self._allowed_cache: dict[str, bool] = {}
        self._memo: dict[bytes, tuple] = {}  # query bytes after the id -> (second, key, entry, reply after id)
        self._socks: list[socket.socket] = []
        self._tcp: list[asyncio.base_events.Server] = []
        self._pending: dict[tuple, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._tcp_clients = 0
        self.counters = {"queries": 0, "cache_hits": 0, "forwarded": 0, "local": 0, "refused": 0,
                         "formerr": 0, "servfail": 0, "dropped": 0}

    def configure(self, zone: LocalZone, cache: Cache, forwarder: Forwarder, allowed) -> None:
        same = ((cache.size, cache.max_ttl, cache.negative_ttl, forwarder.upstreams, zone.domain, zone.networks)
                == (self.cache.size, self.cache.max_ttl, self.cache.negative_ttl, self.forwarder.upstreams,
                    self.zone.domain, self.zone.networks))
        if same:  # same upstreams, limits and local zone: keep what we know (else a cached answer
            cache = self.cache  # could shadow a name that is now local)
        self._memo.clear()
        self.zone, self.cache, self.forwarder, self.allowed = zone, cache, forwarder, allowed
        self._allowed_cache.clear()

    # -- sockets --------------------------------------------------------------------------------
    async def open(self, addresses: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Listen on UDP and TCP at each (host, port); port 0 picks one. Returns the bound addresses."""
        loop = asyncio.get_running_loop()
        bound = []
        try:
            for host, port in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
                sock.bind((host, port))
                sock.setblocking(False)
                self._socks.append(sock)
                port = sock.getsockname()[1]
                loop.add_reader(sock.fileno(), self._on_readable, sock)
                self._tcp.append(await asyncio.start_server(self._tcp_client, host, port, reuse_address=True))
                bound.append((host, port))
        except OSError:
            self.close()
            raise
        return bound

    def close(self) -> None:
        for sock in self._socks:
            close_watched(sock)
        self._socks.clear()
        for server in self._tcp:
            server.close()
        self._tcp.clear()
        for task in self._tasks:
            task.cancel()

    # -- policy ---------------------------------------------------------------------------------------
    def may_ask(self, src: str) -> bool:
        ok = self._allowed_cache.get(src)
        if ok is None:
            ip = ipaddress.IPv4Address(src)
            ok = ip.is_loopback or any(ip in net for net in self.allowed)
            if len(self._allowed_cache) > 10000:
                self._allowed_cache.clear()
            self._allowed_cache[src] = ok
        return ok

    # -- UDP ---------------------------------------------------------------------------------------------
    def _on_readable(self, sock: socket.socket) -> None:
        """Drain the socket; cache hits are answered here, the rest goes to a task.

        Hot path: a client repeating the same question (same bytes after the id) within the same
        second gets the reply rendered for it before, with its own id.
        """
        now = time.monotonic()
        second = int(now)
        memo, entries, allowed = self._memo, self.cache.entries, self._allowed_cache
        count = hits = 0
        try:
            for _ in range(256):
                try:
                    data, src = sock.recvfrom(4096)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    log.warning("DNS receive failed: %s", exc)
                    return
                count += 1
                ok = allowed.get(src[0])
                if ok is None:
                    ok = self.may_ask(src[0])
                if not ok:
                    self.counters["refused"] += 1
                    self._send(sock, _error_reply(data, RCODE.REFUSED), src)
                    continue
                tail = data[2:]
                seen = memo.get(tail)
                if seen is not None and seen[0] == second and entries.get(seen[1]) is seen[2]:
                    hits += 1
                    self._send(sock, data[:2] + seen[3], src)
                    continue
                q = wire.read_query(data)
                if q is not None and entries:
                    entry = self.cache.get(q.key, now)
                    if entry is not None:
                        hits += 1
                        reply = render(entry, data, q, now)
                        if q.plain:
                            if len(memo) >= MEMO_SIZE:
                                memo.clear()
                            memo[tail] = (second, q.key, entry, reply[2:])
                        self._send(sock, reply, src)
                        continue
                if len(self._tasks) >= MAX_PENDING:
                    self.counters["dropped"] += 1
                    continue
                task = asyncio.ensure_future(self._answer_udp(sock, data, src, q))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            self.counters["queries"] += count
            self.counters["cache_hits"] += hits

    @staticmethod
    def _send(sock: socket.socket, reply: bytes | None, src) -> None:
        if reply is None:
            return
        try:
            sock.sendto(reply, src)
        except OSError:
            pass  # a full buffer or a vanished client: UDP, the client retries

    async def _answer_udp(self, sock: socket.socket, data: bytes, src, q: wire.Query | None) -> None:
        try:
            self._send(sock, await self.answer(data, 512 if q is None else q.udp_size), src)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("DNS query from %s failed", src[0])

    # -- TCP ---------------------------------------------------------------------------------------------
    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        src = writer.get_extra_info("peername")[0]
        if self._tcp_clients >= MAX_TCP:
            writer.close()
            return
        self._tcp_clients += 1
        try:
            while True:
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))[0]
                data = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE)
                self.counters["queries"] += 1
                if not self.may_ask(src):
                    self.counters["refused"] += 1
                    reply = _error_reply(data, RCODE.REFUSED)
                else:
                    reply = await self.answer(data, 65535)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("DNS TCP client %s failed", src)
        finally:
            self._tcp_clients -= 1
            writer.close()

    # -- answers -----------------------------------------------------------------------------------------
    async def answer(self, data: bytes, max_size: int) -> bytes | None:
        """The reply to any message (slow path: parsed by dnslib); None: send nothing."""
        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises DNSError, struct.error, UnicodeDecodeError... on garbage
            self.counters["formerr"] += 1
            return _error_reply(data, RCODE.FORMERR)
        header = request.header
        if header.qr:
            return None
        if header.opcode != 0:
            return _error_reply(data, RCODE.NOTIMP)
        if len(request.questions) != 1:
            self.counters["formerr"] += 1
            return _error_reply(data, RCODE.FORMERR)
        question = request.q
        qname = str(question.qname).rstrip(".").lower()
        edns = any(r.rtype == QTYPE.OPT for r in request.ar)
        reply = request.reply()
        reply.header.rd = header.rd
        reply.ar = []
        if question.qclass == 1 and self.zone.covers(qname):
            self.counters["local"] += 1
            rcode, answers, authority = self.zone.answer(qname, question.qtype)
            reply.header.aa = 1
            reply.header.rcode = rcode
            reply.rr, reply.auth = answers, authority
            return self._finish(reply, edns, max_size)
        name = wire_name(question.qname.label)
        key = (name.lower(), question.qtype, question.qclass)
        result = self.cache.get(key, time.monotonic())
        if result is None:
            result = await self._resolve(key, str(question.qname), question.qtype, question.qclass)
        if isinstance(result, Entry):
            flags = header.rd and wire.RD
            query = wire.HEADER.pack(header.id, flags, 1, 0, 0, 0) + name + struct.pack("!HH", question.qtype,
                                                                                        question.qclass)
            q = wire.Query(header.id, flags, len(query), key, edns, max_size)
            return render(result, query, q, time.monotonic())
        if isinstance(result, DNSRecord):  # an answer we could not cache (TTL 0)
            reply.header.rcode = result.header.rcode
            reply.rr, reply.auth = result.rr, result.auth
        else:
            reply.header.rcode = result
        return self._finish(reply, edns, max_size)

    @staticmethod
    def _finish(reply: DNSRecord, edns: bool, max_size: int) -> bytes:
        if edns:
            reply.add_ar(EDNS0(udp_len=1232))
        packed = reply.pack()
        if len(packed) > max_size:
            reply.rr, reply.auth, reply.ar = [], [], []
            reply.header.tc = 1
            packed = reply.pack()
        return packed

    async def _resolve(self, key: tuple, qname: str, qtype: int, qclass: int) -> Entry | DNSRecord | int:
        """A cache entry, an uncacheable answer, or an rcode (SERVFAIL when no upstream answers)."""
        pending = self._pending.get(key)
        if pending is not None:  # the same question is already on its way upstream
            return await asyncio.shield(pending)
        fut = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        result: Entry | DNSRecord | int = RCODE.SERVFAIL
        try:
            self.counters["forwarded"] += 1
            response = await self.forwarder.ask(qname, qtype, qclass)
            result = self.cache.store(key, response) or response
            if response.header.rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
                result = RCODE.SERVFAIL
        except UpstreamError as exc:
            log.info("no upstream answer for %s: %s", qname, exc)
            self.counters["servfail"] += 1
        finally:
            del self._pending[key]
            fut.set_result(result)
        return result


def wire_name(labels) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\0"
