"""Client transactions against a silent or scripted peer: timers A/B/E/F/K, ACK for non-2xx, CANCEL."""
import asyncio
import socket

from services.pbx.registrar import Location
from services.pbx.sip.message import Request, Response, parse, response_to
from services.pbx.sip.stack import SipStack

from .conftest import run


class Tu:
    def __init__(self) -> None:
        self.requests = []

    def on_request(self, tx, req):
        self.requests.append(req)
        tx.reply(200)

    def on_ack(self, req):
        pass

    def on_cancel(self, tx):
        tx.reply(487)

    def on_stray_response(self, resp):
        pass

    def allow(self, source, req):
        return True


def request(method: str, port: int) -> Request:
    req = Request(method, f"sip:peer@127.0.0.1:{port}")
    req.add("From", "<sip:pbx@127.0.0.1>;tag=abc")
    req.add("To", "<sip:peer@127.0.0.1>")
    req.add("Call-ID", f"test-{method}")
    req.add("CSeq", f"1 {method}")
    return req


async def _received_times(peer: socket.socket, until: float) -> list[tuple[float, bytes]]:
    loop = asyncio.get_running_loop()
    out = []
    while loop.time() < until:
        try:
            data = await asyncio.wait_for(loop.sock_recv(peer, 65535), until - loop.time())
        except TimeoutError:
            break
        out.append((loop.time(), data))
    return out


def test_non_invite_retransmits_with_backoff_then_times_out():
    async def main():
        stack = SipStack(Tu())
        stack.timers.T1, stack.timers.T2 = 0.02, 0.08
        await stack.start("127.0.0.1", 0)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fut = asyncio.ensure_future(stack.request(request("OPTIONS", peer.getsockname()[1]), ("udp", "127.0.0.1",
                                                                                           peer.getsockname()[1])))
        times = [t - t0 for t, _ in await _received_times(peer, t0 + 1.5)]
        resp = await fut
        assert resp.status == 408  # timer F = 64*T1 = 1.28 s
        # timer E: 0, .02, .06, .14, then every T2=.08 until F -> at most 18 sends (fewer if the loop lags)
        assert 5 <= len(times) <= 18
        peer.close()
        await stack.close()
    run(main())


def test_invite_non2xx_is_acked_and_cancel_waits_for_provisional():
    async def main():
        stack = SipStack(Tu())
        stack.timers.T1 = 0.05
        await stack.start("127.0.0.1", 0)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        port = peer.getsockname()[1]
        loop = asyncio.get_running_loop()
        got: list[Response] = []
        tx = stack.send_request(request("INVITE", port), ("udp", "127.0.0.1", port), got.append)
        invite = parse(await loop.sock_recv(peer, 65535))
        tx.cancel()  # nothing received yet: the CANCEL must wait (RFC 3261 9.1)
        await asyncio.sleep(0.02)
        peer.sendto(response_to(invite, 180, to_tag="t").to_bytes(), ("127.0.0.1", stack.port))
        msgs = [parse(d) for _, d in await _received_times(peer, loop.time() + 0.3)]
        cancels = [m for m in msgs if isinstance(m, Request) and m.method == "CANCEL"]
        assert cancels and cancels[0].top_via.branch == invite.top_via.branch
        peer.sendto(response_to(cancels[0], 200).to_bytes(), ("127.0.0.1", stack.port))
        final = response_to(invite, 487, to_tag="t")
        peer.sendto(final.to_bytes(), ("127.0.0.1", stack.port))
        peer.sendto(final.to_bytes(), ("127.0.0.1", stack.port))  # retransmitted final: ACKed again, not passed up
        msgs = [parse(d) for _, d in await _received_times(peer, loop.time() + 0.3)]
        acks = [m for m in msgs if isinstance(m, Request) and m.method == "ACK"]
        assert len(acks) == 2 and acks[0].top_via.branch == invite.top_via.branch and acks[0].to.tag == "t"
        assert [r.status for r in got] == [180, 487]
        peer.close()
        await stack.close()
    run(main())


def test_location_expiry_and_limits():
    loc = Location()
    for i in range(4):
        assert loc.update("201", f"sip:201@192.0.2.{i}", ("udp", f"192.0.2.{i}", 5060), 60 + i, "c", 1, "", 3) is None
    assert len(loc.lookup("201")) == 3  # the oldest binding made room
    assert loc.update("201", "sip:201@192.0.2.3", ("udp", "192.0.2.3", 5060), 60, "c", 1, "", 3) == "out of order"
    for b in loc.bindings["201"]:
        b.expires_at = 0
    assert loc.lookup("201") == [] and loc.snapshot() == []
