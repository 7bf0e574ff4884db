"""Feature codes keyed during a call, with real phones: bob keys *70 in his call with alice (RFC 4733
events); alice hears none of those keys (but the others bob keys, in order), is parked, and carol takes
her from the slot and they talk. The same code as SIP INFO (scripted phones on the wire)."""
from contextlib import ExitStack

import pytest

from services.pbx.features import park

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .rawphone import answer, in_dialog, next_request, sdp
from .test_channel import AudioBaresip, read_wav
from .test_conformance_calls import _answered_call, _registered
from .test_park import box, parked, prompts  # noqa: F401 (the prompts fixture)
from .test_recording import power, tone

ALICE_HZ, CAROL_HZ = 600, 1000

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def test_park_keyed_during_a_call_then_retrieved(tmp_path, prompts):  # noqa: F811
    with box(tmp_path, prompts) as pbx, ExitStack() as stack:
        def phone(who, hz=None):
            kw = {"user": who["extension"], "password": who["sip_secret"], "registrar": pbx.registrar}
            ua = stack.enter_context(AudioBaresip(who["login"], tone(tmp_path / f"{hz}.wav", hz), codecs=("pcmu",),
                                                  **kw) if hz else Baresip(who["login"], **kw))
            ua.register()
            return ua
        alice, bob, carol = phone(ALICE, ALICE_HZ), phone(BOB), phone(CAROL, CAROL_HZ)
        alice.dial("202")
        bob.answer()
        alice.wait_for("CALL_ESTABLISHED")
        bob.wait_rtp(rx=10)
        bob.send_dtmf("5*9")  # no code: alice gets them all, "*" once "9" shows it is none
        alice.wait_for("CALL_DTMF_START", param="9")
        bob.send_dtmf("*70")
        lot = parked(pbx)
        assert list(lot) == ["701"] and lot["701"].parker == "202"
        bob.wait_for("CALL_CLOSED", timeout=20)  # after hearing the slot number
        assert [e["param"] for e in alice.events if e.get("type") == "CALL_DTMF_START"] == ["5", "*", "9"]
        carol.dial("701")
        carol.wait_for("CALL_ESTABLISHED")
        c, a = carol.rtp_stats()["rx"], alice.rtp_stats()["rx"]
        carol.wait_rtp(rx=c + 50)  # one second of audio each way
        alice.wait_rtp(rx=a + 50)
        [call] = pbx.svc.active_calls()
        assert set(call["parties"]) == {"201", "203"}
        assert [e["param"] for e in alice.events if e.get("type") == "CALL_DTMF_START"] == ["5", "*", "9"]
        carol.hangup()
        alice.wait_for("CALL_CLOSED")
        carol.wait_for("CALL_CLOSED")
        # what each heard, measured: carol hears alice's tone and not her own; alice's last second is carol's
        heard_by_carol, rate = read_wav(carol.heard())
        heard_by_carol = heard_by_carol[rate // 2:]
        assert power(heard_by_carol, ALICE_HZ, rate) > 20 * power(heard_by_carol, CAROL_HZ, rate)
        heard_by_alice, rate = read_wav(alice.heard())
        last = heard_by_alice[-rate:]
        assert power(last, CAROL_HZ, rate) > 20 * power(last, ALICE_HZ, rate)


def test_park_keyed_as_sip_info(tmp_path, prompts):  # noqa: F811
    with box(tmp_path, prompts) as pbx:
        async def main():
            async with _registered(pbx, "201", "202") as (alice, bob):
                req, _incoming, ok = await _answered_call(alice, bob, alice.request(
                    "INVITE", "sip:202@127.0.0.1", "201", body=sdp(4000)))
                passed = []
                for key in "5*70":
                    alice.send(in_dialog(alice, "INFO", ok, req.call_id, f"Signal={key}\r\nDuration=160\r\n".encode(),
                                         "application/dtmf-relay"))
                    if key == "5":  # no code: bob gets it and answers it
                        info = await next_request(bob, "INFO")
                        passed.append(info.body.decode())
                        answer(bob, info, 200, "bobtag")
                    assert (await alice.final()).status == 200
                bye = await next_request(alice, "BYE", timeout=15)  # alice heard the slot, then leaves the call
                answer(alice, bye, 200, "")
                lot = pbx.sync(lambda: dict(park.lot(pbx.svc.core)))
                with pytest.raises(TimeoutError):
                    await next_request(bob, "INFO", timeout=0.5)
                return passed, lot
        passed, lot = run(main())
        assert [p.partition("\r")[0] for p in passed] == ["Signal=5"]
        assert list(lot) == ["701"] and lot["701"].parker == "201"
