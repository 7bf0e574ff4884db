"""A transfer whose destination is an application (apps.py): the transferee is handed to it, the
transferor leaves. Blind: baresip bob transfers baresip alice to *43 (app:echo). Attended: a scripted
alice talks to baresip bob and to *43, then joins them (REFER with Replaces naming the echo call)."""
from contextlib import ExitStack

import pytest

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .pbxrunner import PbxRunner, config
from .rawphone import in_dialog
from .sipclient import SipClient
from .test_attended_transfer import SDP, place_call, refer_replacing
from .test_media_timeout import talking
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


@pytest.fixture
def pbx(tmp_path):
    with PbxRunner(tmp_path / "pbx", config([ALICE, BOB, CAROL], application_numbers={"*43": "app:echo"})) as r:
        yield r


def records(pbx) -> list[tuple]:
    rows = sorted(pbx.svc.cdr_query(), key=lambda r: r["id"])
    return [(r["caller"], r["callee"], r["disposition"], r["transferred_to"]) for r in rows]


def test_blind_transfer_to_an_application(pbx):
    with ExitStack() as stack:
        alice, bob = talking(stack, pbx)  # alice called bob
        alice.wait_rtp(rx=20)
        bob.transfer("*43")
        bob.wait_for("CALL_CLOSED")
        [call] = wait(lambda: [c for c in pbx.svc.active_calls() if set(c["parties"]) == {"201", "app:echo"}],
                      what="alice's call with the application")
        assert call["state"] == "connected"
        rx = alice.rtp_stats()["rx"]
        alice.wait_rtp(rx=rx + 50)  # bob is gone: what alice hears now is her own tone, echoed by the box
        alice.hangup()
        wait(lambda: not pbx.svc.active_calls(), what="the call ended")
    assert wait(lambda: len(records(pbx)) == 2 and records(pbx), what="two records") == [
        ("201", "202", "transferred", "app:echo"), ("201", "app:echo", "answered", "")]


def test_attended_transfer_to_an_application_call(pbx):
    with Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar) as bob:
        bob.register()

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                ok1, call1 = await place_call(x, bob, "202")  # alice -> bob (alice sends no audio)
                req = x.request("INVITE", "sip:*43@127.0.0.1", "201", body=SDP)  # then the echo test
                ok2 = await x.authed(req, "201", ALICE["sip_secret"], timeout=15)
                assert ok2.status == 200
                x.send(in_dialog(x, "ACK", ok2, ok2.call_id))
                byes, notifies = await refer_replacing(x, ok1, ok2, "*43")
                return byes, notifies, call1, ok2.call_id

        byes, notifies, call1, call2 = run(main())
        assert byes == {call1, call2}  # both of alice's calls end for her
        assert notifies[-1].startswith("SIP/2.0 200"), notifies
        wait(lambda: [c for c in pbx.svc.active_calls() if set(c["parties"]) == {"202", "app:echo"}],
             what="bob's call with the application")
        rx = bob.rtp_stats()["rx"]
        bob.wait_rtp(rx=rx + 50)  # alice never sent audio: bob hears his own, echoed
        bob.hangup()
        wait(lambda: not pbx.svc.active_calls(), what="the call ended")
    assert ("201", "202", "transferred", "app:echo") in records(pbx)
