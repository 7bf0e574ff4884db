"""A small authoritative DNS server for tests (dnslib): the 'Internet' behind the box's forwarder.

example.net: <anything>.example.net A 203.0.113.<n>, TTL 300, with an RRSIG when the query sets DO;
zero.example.net the same with TTL 0 (uncacheable); missing.example.net NXDOMAIN (SOA minimum 120);
big.example.net has 60 A records (over 512 bytes: truncated without EDNS, whole with EDNS or TCP);
huge.example.net 100 (truncated over UDP even with EDNS). Single labels (TLDs such as com, org, arpa):
an NS record, NODATA for other types. Counts questions by name (asked, tcp_asked) and keeps each
query's EDNS OPT record (opts).
"""
from __future__ import annotations

import socket
import threading
from collections import Counter

from dnslib import EDNS0, NS, QTYPE, RCODE, RR, RRSIG, SOA, A, DNSRecord

BIG = {"big.example.net": 60, "huge.example.net": 100}


class Upstream:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        for attempt in range(20):  # a free UDP port may be taken for TCP (some connection's local port)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((host, port))
            self.address = self.sock.getsockname()
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(self.address)
                break
            except OSError:
                self.sock.close()
                self.tcp.close()
                if port or attempt == 19:
                    raise
        self.sock.settimeout(0.2)
        self.asked: Counter = Counter()
        self.tcp_asked: Counter = Counter()
        self.opts: list = []
        self._stop = threading.Event()
        self.tcp.listen(8)
        self.tcp.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.tcp_thread = threading.Thread(target=self._serve_tcp, daemon=True)
        self.tcp_thread.start()

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    size = int.from_bytes(conn.recv(2), "big")
                    request = DNSRecord.parse(conn.recv(size))
                    reply = self.reply(request, tcp=True).pack()
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
                except Exception:
                    continue

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                request = DNSRecord.parse(data)
            except Exception:
                continue
            self.sock.sendto(self.reply(request).pack(), src)

    def reply(self, request: DNSRecord, tcp: bool = False) -> DNSRecord:
        name = str(request.q.qname).lower().rstrip(".")
        (self.tcp_asked if tcp else self.asked)[name] += 1
        opt = next((r for r in request.ar if r.rtype == QTYPE.OPT), None)
        self.opts.append(opt)
        dnssec = opt is not None and bool(opt.ttl & 0x8000)
        reply = request.reply()
        reply.header.aa = 1  # an authoritative server: the box must not pass that on
        soa = RR("example.net", QTYPE.SOA, ttl=3600, rdata=SOA("ns.example.net", "h.example.net", (1, 1, 1, 1, 120)))
        if name and "." not in name:
            if request.q.qtype == QTYPE.NS:
                reply.add_answer(RR(name, QTYPE.NS, ttl=300, rdata=NS(f"a.nic.{name}")))
            else:
                reply.add_auth(RR(name, QTYPE.SOA, ttl=300, rdata=SOA(f"a.nic.{name}", f"h.nic.{name}",
                                                                      (1, 1, 1, 1, 60))))
        elif not name.endswith("example.net") or name == "missing.example.net":
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(soa)
        elif request.q.qtype != QTYPE.A:
            reply.add_auth(soa)
        elif name in BIG:
            for i in range(BIG[name]):
                reply.add_answer(RR(name, QTYPE.A, ttl=300, rdata=A(f"203.0.113.{i + 1}")))
            limit = 65535 if tcp else max(512, opt.rclass) if opt is not None else 512
            if len(reply.pack()) > limit:
                reply.rr = []
                reply.header.tc = 1
        else:
            n = sum(name.encode()) % 200 + 1
            ttl = 0 if name == "zero.example.net" else 300
            reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=ttl, rdata=A(f"203.0.113.{n}")))
            if dnssec:
                reply.add_answer(RR(request.q.qname, QTYPE.RRSIG, ttl=ttl, rdata=RRSIG(
                    QTYPE.A, 13, 3, ttl, 2000000000, 1700000000, 4242, "example.net", b"\x01" * 64)))
        if opt is not None:
            reply.add_ar(EDNS0(udp_len=1232, flags="do" if dnssec else ""))
        return reply

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.tcp_thread.join(2)
        self.sock.close()
        self.tcp.close()
