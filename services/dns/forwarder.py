"""Asks the upstream resolvers: a fresh socket and random id per question, EDNS(0) with DO (answers up
to 1232 bytes over UDP, DNSSEC records for the clients that want them), TCP when truncated."""
from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct

from dnslib import RCODE, DNSRecord

from services.dns import wire
from services.dns.ratelog import LimitedLog

log = LimitedLog(logging.getLogger("officebox.dns"))
UDP_TIMEOUT = 1.5
EDNS_DO = wire.opt_rr(do=True)


class UpstreamError(Exception):
    pass


class Forwarder:
    def __init__(self, upstreams: list[tuple[str, int]]) -> None:
        self.upstreams = upstreams
        self.failures = 0

    async def ask(self, name: bytes, qtype: int, qclass: int) -> DNSRecord:
        """The first valid answer from the upstreams, in order, to the question (wire-format name);
        UpstreamError if none answers."""
        if not self.upstreams:
            raise UpstreamError("no upstream resolver configured")
        last = "no answer"
        for host, port in self.upstreams:
            try:
                reply = await self._ask_one(host, port, name, qtype, qclass, edns=True)
                if reply.header.rcode in (RCODE.FORMERR, RCODE.NOTIMP):  # an old server without EDNS
                    reply = await self._ask_one(host, port, name, qtype, qclass, edns=False)
                return reply
            except (TimeoutError, OSError, UpstreamError, ValueError) as exc:
                self.failures += 1
                last = f"{host}:{port}: {exc or exc.__class__.__name__}"
                log.info("upstream %s failed", last)
        raise UpstreamError(last)

    async def _ask_one(self, host: str, port: int, name: bytes, qtype: int, qclass: int, edns: bool) -> DNSRecord:
        qid = secrets.randbelow(65536)
        question = name + struct.pack("!HH", qtype, qclass)
        data = wire.HEADER.pack(qid, wire.RD, 1, 0, 0, int(edns)) + question + (EDNS_DO if edns else b"")
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
                reply = self._check(qid, question, raw)
                if reply is not None:
                    break
        finally:
            sock.close()
        if reply.header.tc:
            reply = await self._ask_tcp(host, port, qid, question, data)
        return reply

    @staticmethod
    def _check(qid: int, question: bytes, raw: bytes) -> DNSRecord | None:
        """The parsed reply if it answers our question (same id, same question, any case), else None."""
        if len(raw) < 12 + len(question) or raw[12:12 + len(question)].lower() != question.lower():
            return None
        try:
            reply = DNSRecord.parse(raw)
        except Exception:  # dnslib raises several kinds on garbage
            return None
        if reply.header.id != qid or not reply.header.qr or len(reply.questions) != 1:
            return None
        return reply

    async def _ask_tcp(self, host: str, port: int, qid: int, question: bytes, data: bytes) -> DNSRecord:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), UDP_TIMEOUT)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), UDP_TIMEOUT))[0]
            raw = await asyncio.wait_for(reader.readexactly(size), UDP_TIMEOUT)
        finally:
            writer.close()
        reply = self._check(qid, question, raw)
        if reply is None:
            raise UpstreamError("bad TCP answer")
        return reply
