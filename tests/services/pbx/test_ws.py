"""SIP over WebSocket (RFC 7118) against the running PBX: a scripted browser registers over WSS with the
same digest authentication, is called over the connection it registered from, and the listener refuses
foreign origins, other paths, clients without the "sip" subprotocol, oversized frames and too many
connections, each counted, while a registered browser goes on."""
from __future__ import annotations

import asyncio
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.pbx import web_origins
from services.pbx.sip.message import MAX_MESSAGE, Request, Response

from .conftest import ALICE, BOB, run
from .sipclient import SipClient

ORIGIN = "https://127.0.0.1:8443"  # the lab web admin (system.lab_admin_port)


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the box's self-signed certificate
    return ctx


class WsPhone(SipClient):
    """SipClient's requests and digest answers, over one WebSocket as JsSIP sends them."""

    def __init__(self, pbx, origin: str = ORIGIN) -> None:
        super().__init__(("127.0.0.1", pbx.svc.ws_port))
        self.url = f"wss://127.0.0.1:{pbx.svc.ws_port}/ws"
        self.origin = origin
        self.ws = None
        self._reader = None

    async def __aenter__(self) -> "WsPhone":
        self.ws = await connect(self.url, ssl=_tls(), origin=self.origin, subprotocols=["sip"], max_size=None)
        self.port = self.ws.local_address[1]
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                await self.queue.put(message.encode() if isinstance(message, str) else message)
        except ConnectionClosed:
            pass

    async def __aexit__(self, *exc) -> None:
        self._reader.cancel()
        await self.ws.close()

    def request(self, method: str, uri: str, user: str, **kw) -> Request:
        req = super().request(method, uri, user, **kw)
        req.set("Contact", f"<sip:{user}@df7jal23ls0d.invalid;transport=ws>")  # as JsSIP names itself
        return req

    def send(self, data: bytes | Request) -> None:
        raw = data if isinstance(data, bytes) else data.to_bytes()
        raw = raw.replace(b"SIP/2.0/UDP", b"SIP/2.0/WSS")
        asyncio.get_running_loop().create_task(self.ws.send(raw.decode()))


def test_browser_registers_over_wss_and_is_called_over_that_connection(pbx):
    ws = pbx.svc.core.stack.transports.ws

    async def main():
        async with WsPhone(pbx) as browser, SipClient(("127.0.0.1", pbx.port)) as desk:
            challenge_first = await browser.register("201", "not-the-secret")
            assert challenge_first.status == 403  # the same digest check as UDP
            assert (await browser.register("201", ALICE["sip_secret"])).status == 200
            assert (await desk.register("202", BOB["sip_secret"])).status == 200
            regs = {r["extension"]: r for r in pbx.svc.registrations()}
            assert regs["201"]["source"] == f"wss:127.0.0.1:{browser.port}"

            invite = desk.request("INVITE", f"sip:201@127.0.0.1:{pbx.port}", "202", body=_sdp())
            desk.send(invite)
            desk_task = asyncio.create_task(_final_after_auth(desk, invite))
            incoming = await _next_request(browser, "INVITE")  # over the WebSocket it registered from
            assert incoming.get("Via").startswith("SIP/2.0/WSS ") and f":{ws.port};" in incoming.get("Via")
            busy = Response(486)
            for name in ("Via", "From", "To", "Call-ID", "CSeq"):
                for value in incoming.get_all(name):
                    busy.add(name, value + (";tag=browser" if name == "To" else ""))
            browser.send(busy.to_bytes())
            assert (await desk_task).status == 486
        await asyncio.sleep(0.3)
        assert all(r["extension"] != "201" for r in pbx.svc.registrations())  # closed: no way to reach it
    run(main())
    assert ws.counters["accepted"] == 1


def _sdp() -> bytes:
    return (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 0\r\n")


async def _final_after_auth(client: SipClient, req: Request) -> Response:
    resp = await client.final(10)
    if resp.status == 407:
        client.answer_challenge(req, resp, "202", BOB["sip_secret"])
        resp = await client.final(10)
    return resp


async def _next_request(client: SipClient, method: str) -> Request:
    for _ in range(20):
        msg = await client.recv(10)
        if isinstance(msg, Request) and msg.method == method:
            return msg
    raise AssertionError(f"no {method}")


def test_foreign_origin_path_and_subprotocol_are_refused(pbx):
    ws = pbx.svc.core.stack.transports.ws
    url = f"wss://127.0.0.1:{pbx.svc.ws_port}"

    async def main():
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{url}/ws", ssl=_tls(), origin="https://evil.example", subprotocols=["sip"])
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{url}/ws", ssl=_tls(), subprotocols=["sip"])  # no Origin at all
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{url}/other", ssl=_tls(), origin=ORIGIN, subprotocols=["sip"])
        assert refused.value.response.status_code == 404
        try:
            conn = await connect(f"{url}/ws", ssl=_tls(), origin=ORIGIN)  # no "sip" subprotocol
        except InvalidStatus as exc:
            assert exc.response.status_code == 400
        else:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(conn.recv(), 5)
    run(main())
    assert ws.counters["refused_origin"] == 2 and ws.counters["refused_path"] == 1
    assert ws.counters["accepted"] == 0
    assert "https://127.0.0.1:8443" in web_origins(pbx.cfg, lab=True)


def test_garbage_and_oversized_frames_are_dropped_while_a_browser_stays_registered(pbx):
    ws = pbx.svc.core.stack.transports.ws
    stack = pbx.svc.core.stack

    async def main():
        async with WsPhone(pbx) as browser:
            assert (await browser.register("201", ALICE["sip_secret"])).status == 200
            url = browser.url
            async with connect(url, ssl=_tls(), origin=ORIGIN, subprotocols=["sip"]) as rogue:
                malformed = stack.counters["malformed"]
                await rogue.send("\x00\x01 this is no SIP \r\n\r\n")
                await rogue.send(b"\xff\xfe\xfd")
                for _ in range(50):
                    if stack.counters["malformed"] >= malformed + 2:
                        break
                    await asyncio.sleep(0.05)
                assert stack.counters["malformed"] == malformed + 2
                await rogue.send("INVITE " + "x" * (MAX_MESSAGE + 10))
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(rogue.recv(), 5)
                assert closed.value.rcvd.code == 1009
            # the registered browser is not disturbed: it refreshes its registration
            assert (await browser.register("201", ALICE["sip_secret"])).status == 200
            assert [r["source"] for r in pbx.svc.registrations()] == [f"wss:127.0.0.1:{browser.port}"]
    run(main())
    assert ws.counters["oversized"] == 1


def test_connections_per_source_are_limited(pbx):
    ws = pbx.svc.core.stack.transports.ws
    ws.max_per_source = 2

    async def main():
        url = f"wss://127.0.0.1:{pbx.svc.ws_port}/ws"
        kept = [await connect(url, ssl=_tls(), origin=ORIGIN, subprotocols=["sip"]) for _ in range(2)]
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, ssl=_tls(), origin=ORIGIN, subprotocols=["sip"])
        assert refused.value.response.status_code == 503
        await kept[0].close()
        await asyncio.sleep(0.2)
        again = await connect(url, ssl=_tls(), origin=ORIGIN, subprotocols=["sip"])  # a place was freed
        for conn in (kept[1], again):
            await conn.close()
    run(main())
    assert ws.counters["refused_full"] == 1
