"""Scripted phones for conformance tests: a registered callee that answers as told, and the caller's
authenticated INVITE (the PBX's 407 answered once), both over sipclient.SipClient (UDP)."""
from __future__ import annotations

import asyncio
import secrets

from services.pbx.sip.message import Request, Response, response_to

from .sipclient import SipClient


def sdp(port: int, extra: str = "") -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            f"{extra}").encode()


async def _next(client: SipClient, wanted, timeout: float):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        msg = await client.recv(max(0.01, end - loop.time()))
        if wanted(msg):
            return msg


async def next_request(client: SipClient, method: str, timeout: float = 5.0) -> Request:
    """The next request of `method` (responses and other requests on the way are skipped)."""
    return await _next(client, lambda m: isinstance(m, Request) and m.method == method, timeout)


async def next_response(client: SipClient, status: int, timeout: float = 5.0) -> Response:
    return await _next(client, lambda m: isinstance(m, Response) and m.status == status, timeout)


def answer(client: SipClient, req: Request, status: int, tag: str, body: bytes = b"",
           content_type: str = "application/sdp") -> Response:
    resp = response_to(req, status, to_tag=tag)
    if req.method == "INVITE" and status < 300:
        resp.add("Contact", f"<sip:callee@{client.local_host}:{client.port}>")
    if body:
        resp.add("Content-Type", content_type)
        resp.body = body
    client.send(resp)
    return resp


async def invite(client: SipClient, req: Request, user: str, password: str) -> Request:
    """Send an INVITE, ACK the PBX's 407 and send it again with credentials; returns what was sent last
    (its responses are left for the caller to read)."""
    client.send(req)
    client.answer_challenge(req, await next_response(client, 407), user, password)
    return req


def in_dialog(client: SipClient, method: str, ok: Response, call_id: str, body: bytes = b"",
              content_type: str = "application/sdp") -> Request:
    """A request of the caller inside the dialog that `ok` (the 2xx to its INVITE) set up."""
    client.cseq += 1
    req = Request(method, ok.contacts()[0].uri)
    req.add("Via", f"SIP/2.0/UDP 127.0.0.1:{client.port};branch=z9hG4bK{secrets.token_hex(6)};rport")
    req.add("Max-Forwards", "70")
    req.add("From", ok.get("From"))
    req.add("To", ok.get("To"))
    req.add("Call-ID", call_id)
    req.add("CSeq", f"{client.cseq if method != 'ACK' else ok.cseq[0]} {method}")
    req.add("Contact", f"<sip:201@127.0.0.1:{client.port}>")
    if body:
        req.add("Content-Type", content_type)
        req.body = body
    return req
