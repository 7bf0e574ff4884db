"""Early media: a callee answering 183 with SDP (like a carrier's announcement) is heard by the caller
(baresip) through the relay before any answer; the final 486 then ends the call."""
import asyncio
import socket
import struct
from contextlib import ExitStack

import pytest

from services.pbx.sdp import Sdp
from services.pbx.sip.message import Request, response_to

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, run
from .sipclient import SipClient

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def test_early_media_reaches_the_caller(pbx):
    with ExitStack() as stack:
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                            registrar=pbx.registrar))
        alice.register()
        rtp = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        rtp.bind(("127.0.0.1", 0))

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as bob:
                assert (await bob.register("202", BOB["sip_secret"])).status == 200
                await asyncio.to_thread(alice.dial, "202")
                invite = await bob.recv(timeout=5)
                while not (isinstance(invite, Request) and invite.method == "INVITE"):
                    invite = await bob.recv(timeout=5)
                offer = Sdp.parse(invite.body)
                relay = (offer.address(offer.audio()), offer.audio().port)
                early = response_to(invite, 183, to_tag="bobtag")
                early.add("Contact", f"<sip:202@127.0.0.1:{bob.port}>")
                early.add("Content-Type", "application/sdp")
                early.body = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                              b"m=audio %d RTP/AVP 0\r\na=sendrecv\r\n" % rtp.getsockname()[1])
                bob.send(early)
                for seq in range(60):  # 1.2 s of "announcement"
                    rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 99) + b"\xff" * 160, relay)
                    await asyncio.sleep(0.02)
                stats = await asyncio.to_thread(alice.wait_rtp, 0, 30)
                assert stats["rx"] >= 30
                assert alice.call_state() != "CALL_ESTABLISHED"
                bob.send(response_to(invite, 486, to_tag="bobtag"))
                closed = await asyncio.to_thread(alice.wait_for, "CALL_CLOSED")
                assert closed["param"].startswith("486")
        run(main())
