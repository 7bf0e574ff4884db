"""Asks the upstream resolvers: a fresh socket and random id per question, TCP when truncated."""
from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct

from dnslib import DNSQuestion, DNSRecord

log = logging.getLogger("officebox.dns")
UDP_TIMEOUT = 1.5


class UpstreamError(Exception):
    pass


class Forwarder:
    def __init__(self, upstreams: list[tuple[str, int]]) -> None:
        self.upstreams = upstreams
        self.failures = 0

    async def ask(self, qname: str, qtype: int, qclass: int) -> DNSRecord:
        """The first valid answer from the upstreams, in order; UpstreamError if none answers."""
        if not self.upstreams:
            raise UpstreamError("no upstream resolver configured")
        last = "no answer"
        for host, port in self.upstreams:
            try:
                return await self._ask_one(host, port, qname, qtype, qclass)
            except (TimeoutError, OSError, UpstreamError, ValueError) as exc:
                self.failures += 1
                last = f"{host}:{port}: {exc or exc.__class__.__name__}"
                log.info("upstream %s failed", last)
        raise UpstreamError(last)

    async def _ask_one(self, host: str, port: int, qname: str, qtype: int, qclass: int) -> DNSRecord:
        query = DNSRecord(q=DNSQuestion(qname, qtype, qclass))
        query.header.id = secrets.randbelow(65536)
        query.header.rd = 1
        data = query.pack()
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect((host, port))  # the kernel drops datagrams from other sources
            await loop.sock_sendall(sock, data)
            deadline = loop.time() + UDP_TIMEOUT
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError()
                raw = await asyncio.wait_for(loop.sock_recv(sock, 65535), remaining)
                reply = self._check(query, raw)
                if reply is not None:
                    break
        finally:
            sock.close()
        if reply.header.tc:
            reply = await self._ask_tcp(host, port, query, data)
        return reply

    @staticmethod
    def _check(query: DNSRecord, raw: bytes) -> DNSRecord | None:
        try:
            reply = DNSRecord.parse(raw)
        except Exception:  # dnslib raises several kinds on garbage
            return None
        if reply.header.id != query.header.id or not reply.header.qr or len(reply.questions) != 1:
            return None
        q, a = query.q, reply.q
        if str(a.qname).lower() != str(q.qname).lower() or a.qtype != q.qtype or a.qclass != q.qclass:
            return None
        return reply

    async def _ask_tcp(self, host: str, port: int, query: DNSRecord, data: bytes) -> DNSRecord:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), UDP_TIMEOUT)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), UDP_TIMEOUT))[0]
            raw = await asyncio.wait_for(reader.readexactly(size), UDP_TIMEOUT)
        finally:
            writer.close()
        reply = self._check(query, raw)
        if reply is None:
            raise UpstreamError("bad TCP answer")
        return reply
