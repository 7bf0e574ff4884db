"""A small authoritative DNS server for tests (dnslib): the 'Internet' behind the box's forwarder.

example.net: <anything>.example.net A 203.0.113.<n>, TTL 300; missing.example.net NXDOMAIN (SOA
minimum 120); big.example.net has 60 A records (over 512 bytes: truncated over UDP, whole over TCP). Counts questions.
"""
from __future__ import annotations

import socket
import threading
from collections import Counter

from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord


class Upstream:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.asked: Counter = Counter()
        self._stop = threading.Event()
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(self.address)
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
        self.asked[name] += 1
        reply = request.reply()
        soa = RR("example.net", QTYPE.SOA, ttl=3600, rdata=SOA("ns.example.net", "h.example.net", (1, 1, 1, 1, 120)))
        if not name.endswith("example.net") or name == "missing.example.net":
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(soa)
        elif request.q.qtype != QTYPE.A:
            reply.add_auth(soa)
        elif name == "big.example.net":
            for i in range(60):
                reply.add_answer(RR(name, QTYPE.A, ttl=300, rdata=A(f"203.0.113.{i + 1}")))
            if not tcp and len(reply.pack()) > 512:
                reply.rr = []
                reply.header.tc = 1
        else:
            n = sum(name.encode()) % 200 + 1
            reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=300, rdata=A(f"203.0.113.{n}")))
        return reply

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.tcp_thread.join(2)
        self.sock.close()
        self.tcp.close()
