"""Attended transfer (REFER with Replaces, RFC 3891/5589): baresip 1.0 cannot start one, so the
transferring phone is scripted; the two parties who end up talking are real baresip phones."""
import asyncio
from contextlib import ExitStack
from urllib.parse import quote

import pytest

from services.pbx.sip.message import Response, response_to

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .rawphone import in_dialog
from .sipclient import SipClient

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4998 RTP/AVP 0\r\na=sendrecv\r\n")


async def place_call(x: SipClient, callee: Baresip, number: str) -> tuple[Response, str]:
    req = x.request("INVITE", f"sip:{number}@127.0.0.1", "201", body=SDP)
    ok, _ = await asyncio.gather(x.authed(req, "201", ALICE["sip_secret"], timeout=15), callee.aio.answer())
    assert ok.status == 200
    x.send(in_dialog(x, "ACK", ok, ok.call_id))
    return ok, ok.call_id


def bob_and_carol(stack: ExitStack, pbx) -> tuple[Baresip, Baresip]:
    bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar))
    carol = stack.enter_context(Baresip("carol", user="203", password=CAROL["sip_secret"], registrar=pbx.registrar))
    bob.register()
    carol.register()
    return bob, carol


async def attended_transfer(pbx, bob: Baresip, carol: Baresip) -> tuple[set[str], list[str], str, str]:
    """Scripted alice (201) calls bob, then carol, then joins them (REFER with Replaces): the call-ids of
    the BYEs alice got, the NOTIFY bodies, and the two calls' ids."""
    async with SipClient(("127.0.0.1", pbx.port)) as x:
        ok1, call1 = await place_call(x, bob, "202")      # alice -> bob, then consults carol
        ok2, call2 = await place_call(x, carol, "203")
        assert len(pbx.svc.active_calls()) == 2
        byes, notifies = await refer_replacing(x, ok1, ok2, "203")
        return byes, notifies, call1, call2


async def refer_replacing(x: SipClient, ok1: Response, ok2: Response, number: str) -> tuple[set[str], list[str]]:
    """Alice's REFER in her first call (`ok1`) to `number`, replacing her second one (`ok2`): the
    call-ids of the BYEs she then gets (until two) and the NOTIFY bodies."""
    replaces = quote(f"{ok2.call_id};to-tag={ok2.to.tag};from-tag={x.tag}", safe="")
    refer = in_dialog(x, "REFER", ok1, ok1.call_id)
    refer.add("Refer-To", f"<sip:{number}@127.0.0.1?Replaces={replaces}>")
    refer.add("Referred-By", "<sip:201@127.0.0.1>")
    x.send(refer)
    byes, notifies = set(), []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while len(byes) < 2 and loop.time() < deadline:
        msg = await x.recv(timeout=max(0.1, deadline - loop.time()))
        if isinstance(msg, Response):
            if msg.cseq[1] == "REFER":
                assert msg.status == 202
            continue
        x.send(response_to(msg, 200))
        if msg.method == "NOTIFY":
            notifies.append(msg.body.decode())
        elif msg.method == "BYE":
            byes.add(msg.call_id)
    return byes, notifies


def test_attended_transfer_joins_the_two_other_parties(pbx):
    with ExitStack() as stack:
        bob, carol = bob_and_carol(stack, pbx)
        byes, notifies, call1, call2 = run(attended_transfer(pbx, bob, carol))
        assert byes == {call1, call2}
        assert notifies[-1].startswith("SIP/2.0 200")
        # bob and carol now hear each other through the relay
        b_rx, c_rx = bob.rtp_stats()["rx"], carol.rtp_stats()["rx"]
        bob.wait_rtp(rx=b_rx + 25)
        carol.wait_rtp(rx=c_rx + 25)
        [call] = pbx.svc.active_calls()
        assert set(call["relay"]) == {"202", "203"}
        carol.hangup()
        bob.wait_for("CALL_CLOSED")
    rows = sorted(pbx.svc.cdr_query(), key=lambda r: r["id"])
    assert [(r["caller"], r["callee"], r["disposition"], r["transferred_to"]) for r in rows] == [
        ("201", "202", "transferred", "203"), ("201", "203", "transferred", "202"), ("202", "203", "answered", "")]
