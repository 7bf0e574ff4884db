"""The DNS server: UDP (drained straight from the socket; cached and local answers rendered inline
from packed entries) and TCP (capped per source, see tcp.py)."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import time

from dnslib import QTYPE, RCODE, DNSQuestion, DNSRecord

from appliance.aio import close_watched
from services.dns import wire
from services.dns.cache import Cache, Entry, make_entry, render
from services.dns.forwarder import Forwarder, UpstreamError
from services.dns.ratelog import LimitedLog
from services.dns.tcp import IDLE_BUSY, TcpSlots
from services.dns.zone import LocalZone

log = logging.getLogger("officebox.dns")
lan_log = LimitedLog(log)  # what clients cause
MAX_PENDING = 1000
TCP_READ = 5.0  # seconds to receive a query once its length arrived
MEMO_SIZE = 20000
DRAIN_BUDGET = 0.02  # seconds one readable callback may spend draining before yielding the loop
LOCAL_SIZE = 20000
REFUSED_TYPES = (QTYPE.AXFR, QTYPE.IXFR)  # zone transfers: never served, never forwarded
FOREVER = float("inf")


def _error_reply(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply (FORMERR/NOTIMP/REFUSED) to a message we will not parse further."""
    if len(data) < 12 or data[2] & 0x80:  # too short to answer, or itself a response
        return None
    qid, flags = struct.unpack_from("!HH", data)
    return wire.HEADER.pack(qid, wire.QR | (flags & (0x7800 | wire.RD)) | rcode, 0, 0, 0, 0)


def _rcode_reply(query: bytes, q: wire.Query, rcode: int) -> bytes:
    """An answerless reply with the question (and our OPT, carrying an extended rcode's upper bits)."""
    ext = rcode >> 4
    opt = q.edns or ext > 0
    flags = wire.QR | wire.RA | (q.flags & wire.RD) | (rcode & 0xF)
    return (wire.HEADER.pack(q.qid, flags, 1, 0, 0, int(opt)) + query[12:q.qend]
            + (wire.opt_rr(q.do, ext) if opt else b""))


# bytes that never occur in local names (dots inside a label, spaces, non-ASCII...) read as "?": one
# character each, so a name keeps its length (the packed answer's pointers to the question stay right)
_TEXT = bytes(c if 0x21 <= c < 0x7F and c not in b".\\" else ord("?") for c in range(256))


def _text_name(wire_name: bytes) -> str:
    """b'\\x03www\\x07example\\x00' -> 'www.example' (the input is lowercase already)."""
    labels, i = [], 0
    while wire_name[i]:
        n = wire_name[i]
        labels.append(wire_name[i + 1:i + 1 + n].translate(_TEXT))
        i += n + 1
    return b".".join(labels).decode("ascii")


class DnsServer:
    def __init__(self, zone: LocalZone, cache: Cache, forwarder: Forwarder,
                 allowed: list[ipaddress.IPv4Network]) -> None:
        self.zone, self.cache, self.forwarder = zone, cache, forwarder
        self.allowed = allowed
        self._allowed_cache: dict[str, bool] = {}
        self._memo: dict[bytes, tuple] = {}  # query bytes after the id -> (second, table, key, entry, reply after id)
        self.local: dict[tuple, Entry] = {}  # local-zone answers, packed once
        self._socks: list[socket.socket] = []
        self._tcp: list[asyncio.base_events.Server] = []
        self.tcp_slots = TcpSlots()
        self._pending: dict[tuple, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self.counters = {"queries": 0, "cache_hits": 0, "forwarded": 0, "local": 0, "refused": 0,
                         "formerr": 0, "servfail": 0, "dropped": 0, "tcp_refused": 0}

    def configure(self, zone: LocalZone, cache: Cache, forwarder: Forwarder, allowed) -> None:
        same = ((cache.size, cache.max_ttl, cache.negative_ttl, forwarder.upstreams, zone.domain, zone.networks)
                == (self.cache.size, self.cache.max_ttl, self.cache.negative_ttl, self.forwarder.upstreams,
                    self.zone.domain, self.zone.networks))
        if same:  # same upstreams, limits and local zone: keep what we know (else a cached answer
            cache = self.cache  # could shadow a name that is now local)
        self.zone, self.cache, self.forwarder, self.allowed = zone, cache, forwarder, allowed
        self._allowed_cache.clear()
        self.zone_changed()

    def zone_changed(self, new_name: str | None = None) -> None:
        """The local zone changed (a DHCP name came or went): forget packed answers; a bare name that
        is now local must no longer come from the cache."""
        self.local.clear()
        self._memo.clear()
        if new_name:
            self.cache.drop_bare(new_name.lower().encode("ascii", "replace"))

    # -- sockets --------------------------------------------------------------------------------
    async def open(self, addresses: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Listen on UDP and TCP at each (host, port); port 0 picks one. Returns the bound addresses."""
        loop = asyncio.get_running_loop()
        bound = []
        try:
            for host, port in addresses:
                for attempt in range(20):  # port 0: the UDP port picked may be taken for TCP; pick again
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
                    try:
                        sock.bind((host, port))
                        tcp = await asyncio.start_server(self._tcp_client, host, sock.getsockname()[1],
                                                         reuse_address=True)
                        break
                    except OSError:
                        sock.close()
                        if port or attempt == 19:
                            raise
                sock.setblocking(False)
                self._socks.append(sock)
                self._tcp.append(tcp)
                loop.add_reader(sock.fileno(), self._on_readable, sock)
                bound.append((host, sock.getsockname()[1]))
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
        self.tcp_slots.close_all()
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
        """Drain the socket; local and cached answers are rendered here, the rest goes to a task.

        Hot path: a client repeating the same question (same bytes after the id) within the same
        second gets the reply rendered for it before, with its own id.
        """
        now = time.monotonic()
        second = int(now)
        memo, entries, local, allowed = self._memo, self.cache.entries, self.local, self._allowed_cache
        count = hits = local_hits = 0
        try:
            for _ in range(256):
                if count & 31 == 31 and time.monotonic() - now > DRAIN_BUDGET:
                    return  # the socket is level-triggered: the rest is read on the loop's next turn
                try:
                    data, src = sock.recvfrom(4096)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    lan_log.warning("DNS receive failed: %s", exc)
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
                if seen is not None and seen[0] == second and seen[1].get(seen[2]) is seen[3]:
                    hits += 1
                    local_hits += seen[1] is local
                    self._send(sock, data[:2] + seen[4], src)
                    continue
                q = wire.read_query(data)
                if q is not None:
                    table, entry = local, local.get(q.key)
                    if entry is None and entries:
                        table, entry = entries, self.cache.get(q.key, now)
                    if entry is None:
                        try:
                            table, entry = local, self._local_entry(q)
                        except Exception:  # the slow path meets it again and logs it
                            entry = None
                    if entry is not None:
                        hits += 1
                        local_hits += table is local
                        reply = render(entry, data, q, now)
                        if q.plain:
                            if len(memo) >= MEMO_SIZE:
                                memo.clear()
                            memo[tail] = (second, table, q.key, entry, reply[2:])
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
            self.counters["cache_hits"] += hits - local_hits
            self.counters["local"] += local_hits

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
            lan_log.exception("DNS query from %s failed", src[0])

    # -- TCP ---------------------------------------------------------------------------------------------
    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        src = writer.get_extra_info("peername")[0]
        slot = self.tcp_slots.admit(src, writer)
        if slot is None:
            self.counters["tcp_refused"] += 1
            writer.close()
            return
        try:
            while True:
                head = await self._next_query(reader, slot)
                data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), TCP_READ)
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
            lan_log.exception("DNS TCP client %s failed", src)
        finally:
            self.tcp_slots.release(slot)
            writer.close()

    async def _next_query(self, reader: asyncio.StreamReader, slot) -> bytes:
        """The next query's length prefix; TimeoutError once idle longer than the idle timeout, which is
        looked at again every IDLE_BUSY seconds (it shrinks when the table fills)."""
        slot.idle_since = time.monotonic()
        read = asyncio.ensure_future(reader.readexactly(2))
        try:
            while True:
                done, _ = await asyncio.wait((read,), timeout=IDLE_BUSY)
                if done:
                    slot.idle_since = None
                    return read.result()
                if time.monotonic() - slot.idle_since >= self.tcp_slots.idle_timeout():
                    raise TimeoutError
        finally:
            read.cancel()

    # -- answers -----------------------------------------------------------------------------------------
    def _local_entry(self, q: wire.Query) -> Entry | None:
        """The packed local answer to this question, or None if it is not ours to answer."""
        name_wire, qtype, qclass = q.key
        if qclass != wire.CLASS_IN or qtype in REFUSED_TYPES:
            return None
        qname = _text_name(name_wire)
        if not self.zone.covers(qname):
            return None
        rcode, answers, authority = self.zone.answer(qname, qtype)
        reply = DNSRecord(q=DNSQuestion(qname or ".", qtype))
        reply.header.rcode = rcode
        reply.rr, reply.auth = answers, authority
        entry = make_entry(reply, None, FOREVER, wire.AA)
        if len(self.local) >= LOCAL_SIZE:
            self.local.clear()
        self.local[q.key] = entry
        return entry

    def _normalize(self, data: bytes) -> tuple[bytes, wire.Query] | bytes | None:
        """An unusual message, parsed by dnslib: (a plain query of its question, its Query), or the
        error reply to send (FORMERR, NOTIMP, BADVERS), or None (send nothing)."""
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
        opts = [r for r in request.ar if r.rtype == QTYPE.OPT]
        labels = request.q.qname.label if len(request.questions) == 1 else ()
        name = wire_name(labels)
        if len(request.questions) != 1 or len(opts) > 1 or len(name) > 255 or any(len(x) > 63 for x in labels):
            self.counters["formerr"] += 1  # RFC 6891 6.1.1: more than one OPT is a format error too
            return _error_reply(data, RCODE.FORMERR)
        question = request.q
        flags = header.rd and wire.RD
        query = wire.HEADER.pack(header.id, flags, 1, 0, 0, 0) + name + struct.pack("!HH", question.qtype,
                                                                                    question.qclass)
        edns = bool(opts)
        ttl, size = (opts[0].ttl, opts[0].rclass) if edns else (0, 512)
        q = wire.Query(header.id, flags, len(query), (name.lower(), question.qtype, question.qclass), edns,
                       max(512, min(size, 4096)), False, bool(ttl & wire.DO_FLAG), (ttl >> 16) & 0xFF)
        return query, q

    async def answer(self, data: bytes, max_size: int) -> bytes | None:
        """The reply to any message (the slow path); None: send nothing."""
        q = wire.read_query(data)
        query = data
        if q is None:
            found = self._normalize(data)
            if not isinstance(found, tuple):
                return found
            query, q = found
        if max_size > 4096:  # TCP: no size limit but the message's
            q.udp_size = max_size
        if q.version != 0:
            return _rcode_reply(query, q, wire.BADVERS)
        _name, qtype, qclass = q.key
        if qclass != wire.CLASS_IN or qtype in REFUSED_TYPES:  # CHAOS (version.bind...), zone transfers
            self.counters["refused"] += 1
            return _rcode_reply(query, q, RCODE.REFUSED)
        entry = self.local.get(q.key) or self._local_entry(q)
        if entry is not None:
            self.counters["local"] += 1
        else:
            entry = self.cache.get(q.key, time.monotonic())
        if entry is None:
            result = await self._resolve(q.key)
            if not isinstance(result, Entry):
                return _rcode_reply(query, q, result)
            entry = result
        return render(entry, query, q, time.monotonic())

    async def _resolve(self, key: tuple) -> Entry | int:
        """A cache entry (or an answer valid only now), or an rcode (SERVFAIL when no upstream answers)."""
        pending = self._pending.get(key)
        if pending is not None:  # the same question is already on its way upstream
            return await asyncio.shield(pending)
        fut = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        result: Entry | int = RCODE.SERVFAIL
        name, qtype, qclass = key
        try:
            self.counters["forwarded"] += 1
            response = await self.forwarder.ask(name, qtype, qclass)
            if response.header.rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
                result = RCODE.SERVFAIL
            else:
                result = self.cache.store(key, response) or make_entry(response, self.cache.max_ttl, 0)
        except UpstreamError as exc:
            lan_log.info("no upstream answer for %s: %s", _text_name(name), exc)
            self.counters["servfail"] += 1
        finally:
            del self._pending[key]
            fut.set_result(result)
        return result


def wire_name(labels) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\0"
