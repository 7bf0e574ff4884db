"""A scripted SIP client for protocol-level tests (raw messages over UDP/TCP, digest answers).

Used where we need exact control (malformed input, wrong passwords, floods); real user agents
(baresip, see baresip.py) are used for the end-to-end call tests.
"""
from __future__ import annotations

import asyncio
import secrets

from services.pbx.auth import authorization, pick_challenge
from services.pbx.sip.message import Message, Request, Response, parse


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue) -> None:
        self.queue = queue

    def datagram_received(self, data, addr) -> None:
        self.queue.put_nowait(data)


class SipClient:
    def __init__(self, server: tuple[str, int], local_host: str = "127.0.0.1") -> None:
        self.server = server
        self.local_host = local_host
        self.queue: asyncio.Queue = asyncio.Queue()
        self.transport = None
        self.port = 0
        self.tag = secrets.token_hex(4)
        self.cseq = 0

    async def __aenter__(self) -> "SipClient":
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(self.queue),
                                                                local_addr=(self.local_host, 0))
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.transport.close()

    def send(self, data: bytes | Message) -> None:
        self.transport.sendto(data if isinstance(data, bytes) else data.to_bytes(), self.server)

    async def recv(self, timeout: float = 3.0) -> Message:
        return parse(await asyncio.wait_for(self.queue.get(), timeout))

    async def final(self, timeout: float = 5.0) -> Response:
        """The next final response (provisional ones are skipped)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.01, end - loop.time()))
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    def request(self, method: str, uri: str, user: str, *, call_id: str | None = None, body: bytes = b"",
                headers: dict | None = None) -> Request:
        self.cseq += 1
        req = Request(method, uri)
        req.add("Via", f"SIP/2.0/UDP {self.local_host}:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport")
        req.add("Max-Forwards", "70")
        req.add("From", f"<sip:{user}@{self.server[0]}>;tag={self.tag}")
        to_user = uri.split(":")[1].split("@")[0] if "@" in uri else user
        req.add("To", f"<sip:{to_user}@{self.server[0]}>")
        req.add("Call-ID", call_id or secrets.token_hex(8))
        req.add("CSeq", f"{self.cseq} {method}")
        req.add("Contact", f"<sip:{user}@{self.local_host}:{self.port}>")
        for name, value in (headers or {}).items():
            req.add(name, value)
        if body:
            req.add("Content-Type", "application/sdp")
            req.body = body
        return req

    async def authed(self, req: Request, username: str, password: str, timeout: float = 5.0) -> Response:
        """Send, answer a 401/407 challenge once with (username, password), return the final response."""
        self.send(req)
        resp = await self.final(timeout)
        if resp.status not in (401, 407):
            return resp
        self.answer_challenge(req, resp, username, password)
        return await self.final(timeout)

    def answer_challenge(self, req: Request, resp: Response, username: str, password: str) -> None:
        """ACK the 407 to an INVITE, send `req` again with credentials for the challenge in `resp`."""
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenge = pick_challenge(resp.get_all(header))
        if resp.status == 407 and req.method == "INVITE":
            ack = Request("ACK", req.uri)
            for name in ("Via", "From", "Call-ID", "Max-Forwards"):
                ack.add(name, req.get(name))
            ack.add("To", resp.get("To"))
            ack.add("CSeq", f"{req.cseq[0]} ACK")
            self.send(ack)
        self.cseq += 1
        req.set("CSeq", f"{self.cseq} {req.method}")
        req.set("Via", f"SIP/2.0/UDP {self.local_host}:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport")
        req.set("Authorization" if resp.status == 401 else "Proxy-Authorization",
                authorization(challenge, req.method, str(req.uri), username, password))
        self.send(req)

    async def register(self, ext: str, password: str, expires: int = 300, username: str | None = None) -> Response:
        req = self.request("REGISTER", f"sip:{self.server[0]}", ext, headers={"Expires": str(expires)})
        return await self.authed(req, username or ext, password)
