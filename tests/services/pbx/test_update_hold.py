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
