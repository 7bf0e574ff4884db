"""Hold and resume with UPDATE (RFC 3311) from a scripted phone; the other party is a real baresip,
which the PBX moves with re-INVITEs."""
import time
from contextlib import ExitStack

import pytest

from services.pbx.sdp import Sdp
from services.pbx.sip.message import Response

from .baresip import Baresip, have_baresip
from .conftest import BOB, run
from .sipclient import SipClient
from .test_attended_transfer import SDP, in_dialog, place_call

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def wait_dir(ua: Baresip, wanted: tuple[str, ...]) -> str:
    deadline = time.monotonic() + 5
    while ua.rtp_stats().get("dir") not in wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    return ua.rtp_stats().get("dir")


def test_update_holds_and_resumes(pbx):
    with ExitStack() as stack:
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar))
        bob.register()

        async def update(x: SipClient, ok: Response, call_id: str, body: bytes) -> Response:
            req = in_dialog(x, "UPDATE", ok, call_id)
            req.add("Content-Type", "application/sdp")
            req.body = body
            x.send(req)
            while True:
                msg = await x.recv(timeout=10)
                if isinstance(msg, Response) and msg.cseq[1] == "UPDATE" and msg.status >= 200:
                    return msg

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                ok, call_id = await place_call(x, bob, "202")
                held = await update(x, ok, call_id, SDP.replace(b"a=sendrecv", b"a=sendonly"))
                assert held.status == 200 and Sdp.parse(held.body).audio().direction == "recvonly"
                assert pbx.svc.active_calls()[0]["on_hold"]
                assert wait_dir(bob, ("recvonly",)) == "recvonly"
                resumed = await update(x, ok, call_id, SDP)
                assert resumed.status == 200 and Sdp.parse(resumed.body).audio().direction == "sendrecv"
                assert wait_dir(bob, ("sendrecv",)) == "sendrecv"
                assert not pbx.svc.active_calls()[0]["on_hold"]
                x.send(in_dialog(x, "BYE", ok, call_id))
                bob.wait_for("CALL_CLOSED")
        run(main())


def test_delayed_offer_caller_answers_in_ack(pbx):
    """INVITE without SDP: the PBX offers to bob, hands bob's choice to the caller as an offer in 200,
    and takes the caller's answer from the ACK."""
    import socket
    import struct

    from services.pbx.sip.message import Request

    with ExitStack() as stack:
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar))
        bob.register()
        rtp = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        rtp.bind(("127.0.0.1", 0))

        async def main():
            import asyncio

            from .conftest import ALICE
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                req = x.request("INVITE", "sip:202@127.0.0.1", "201")
                ok, _ = await asyncio.gather(x.authed(req, "201", ALICE["sip_secret"], timeout=15), bob.aio.answer())
                assert ok.status == 200
                offer = Sdp.parse(ok.body)
                assert offer.audio().formats[0] in (0, 8)  # bob's choice among PBX codecs (baresip: G.711)
                ack = in_dialog(x, "ACK", ok, ok.call_id)
                ack.add("Content-Type", "application/sdp")
                ack.body = SDP.replace(b"4998", b"%d" % rtp.getsockname()[1]).replace(
                    b"RTP/AVP 0", b"RTP/AVP %d" % offer.audio().formats[0])
                x.send(ack)
                relay = (offer.address(offer.audio()), offer.audio().port)
                for seq in range(50):
                    rtp.sendto(struct.pack("!BBHII", 0x80, offer.audio().formats[0], seq, seq * 160, 7)
                               + b"\xff" * 160, relay)
                    await asyncio.sleep(0.02)
                assert (await asyncio.to_thread(bob.wait_rtp, 0, 30))["rx"] >= 30
                rtp.settimeout(3)
                assert len(rtp.recv(2048)) > 12  # bob's audio reaches the address of the ACK's answer
                assert isinstance(ack, Request)
                x.send(in_dialog(x, "BYE", ok, ok.call_id))
                await asyncio.to_thread(bob.wait_for, "CALL_CLOSED")
        run(main())
