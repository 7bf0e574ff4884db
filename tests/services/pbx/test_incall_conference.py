"""The three-party conference keyed during a call, with real baresip phones each sending its own tone and
recording what it hears: alice talks to bob, keys the conference code (RFC 4733) and carol's number;
bob hears music on hold meanwhile (not alice); carol answers and each of the three hears the other two
and not itself (Goertzel powers on the recordings); then one leaves (the third party or the keyer hangs
up, or the admin removes the held party in the live view) and the other two still hear each other; the
keyer holding and resuming stays in the room (the box answers its re-INVITEs).
Carol busy: alice and bob talk again. The code as SIP INFO keys (scripted phones): the other party gets
none of them nor the keyer's re-INVITE meanwhile (the box answers it), and # alone gives the call back."""
from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack

import pytest

from services.pbx.features import threeway

from . import test_channel as ch
from .baresip import have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .pbxrunner import PbxRunner, config
from .rawphone import answer, in_dialog, next_request, next_response, sdp
from .test_conference import HEARD, OWN, _so_far
from .test_conference_mixer import spectrum_peaks
from .test_conformance_calls import _answered_call, _registered
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
FREQS = [520.0, 1020.0, 1250.0]  # alice, bob, carol: away from the dial, ringing and entry tones


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    d = tmp_path_factory.mktemp("tones")
    return ch.tone_files(d, FREQS)


@pytest.fixture(scope="module")
def box3(tmp_path_factory):
    no_voicemail = {ext: {"voicemail": False} for ext in ("201", "202", "203")}
    with PbxRunner(tmp_path_factory.mktemp("pbx"), config([ALICE, BOB, CAROL], extensions=no_voicemail)) as runner:
        yield runner


def _phones(stack, pbx, tones) -> list[ch.AudioBaresip]:
    uas = []
    for who, source in zip((ALICE, BOB, CAROL), tones, strict=True):
        ua = stack.enter_context(ch.AudioBaresip(who["login"], source, user=who["extension"],
                                                 password=who["sip_secret"], registrar=pbx.registrar,
                                                 codecs=("pcmu",)))
        ua.register()
        uas.append(ua)
    return uas


def _states(pbx) -> list[str]:
    return pbx.sync(lambda: sorted({tw.state for tw in threeway._by_call.values()}))


def _talking_then_dialling(pbx, alice, bob) -> None:
    """alice calls bob, then keys the conference code: bob is held, alice may dial."""
    alice.dial("202")
    bob.answer()
    alice.wait_for("CALL_ESTABLISHED")
    bob.wait_rtp(rx=25)
    alice.send_dtmf(pbx.cfg.pbx.feature_codes.conference)
    wait(lambda: _states(pbx) == ["dialling"], timeout=5, what="the box waiting for the third number")


def _assert_hears(ua, own: float, others: list[float], absent: list[float], seconds: float = 1.5) -> None:
    peaks = spectrum_peaks(*_so_far(ua, seconds), FREQS)
    assert peaks[own] < OWN, f"the {own:.0f} Hz phone hears itself: {peaks}"
    for f in others:
        assert peaks[f] > HEARD, f"the {own:.0f} Hz phone does not hear {f:.0f} Hz: {peaks}"
    for f in absent:
        assert peaks[f] < OWN, f"the {own:.0f} Hz phone hears {f:.0f} Hz: {peaks}"


@pytest.mark.parametrize("leaving", ["third", "keyer", "removed"])
def test_three_hear_each_other_then_two_go_on(box3, tones, leaving):
    pbx = box3
    with ExitStack() as stack:
        alice, bob, carol = _phones(stack, pbx, tones)
        _talking_then_dialling(pbx, alice, bob)
        time.sleep(1.5)
        held, rate = _so_far(bob, 1.0)
        assert max(ch.envelope(held)) > 300, "bob hears no music on hold"
        peaks = spectrum_peaks(held, rate, FREQS)
        assert peaks[FREQS[0]] < OWN, f"bob still hears alice while held: {peaks}"
        alice.send_dtmf("203#")
        carol.answer()
        carol.wait_for("CALL_ESTABLISHED")
        wait(lambda: _states(pbx) == ["joined"], timeout=5, what="the three joined")
        [room] = [r for r in pbx.svc.conference_rooms() if r["adhoc"]]
        assert sorted(p["label"] for p in room["participants"]) == ["201", "202", "203"]
        time.sleep(2.5)
        for ua, own in zip((alice, bob, carol), FREQS, strict=True):
            _assert_hears(ua, own, [f for f in FREQS if f != own], [], seconds=2.0)
        if leaving == "keyer":  # alice's phone holds and resumes: the box answers, the two others hear her again
            alice.hold()
            time.sleep(0.5)
            alice.resume()
            time.sleep(2.0)
            _assert_hears(bob, FREQS[1], [FREQS[0], FREQS[2]], [])
            _assert_hears(carol, FREQS[2], [FREQS[0], FREQS[1]], [])
        gone, stay = {"third": (carol, (alice, bob)), "keyer": (alice, (bob, carol)),
                      "removed": (bob, (alice, carol))}[leaving]
        if leaving == "removed":  # by the admin, in the conferences' live view
            [pid] = [p["id"] for p in room["participants"] if p["label"] == "202"]
            assert pbx.svc.conference_remove(room["name"], pid)
        else:
            gone.hangup()
        gone.wait_for("CALL_CLOSED")
        wait(lambda: _states(pbx) == [], timeout=5, what="the conference to end")
        time.sleep(2.0)
        assert all(ua.call_state() == "CALL_ESTABLISHED" for ua in stay)
        [call] = pbx.svc.active_calls()
        assert sorted(call["parties"]) == sorted(ua.user for ua in stay)
        assert not [r for r in pbx.svc.conference_rooms() if r["adhoc"]]
        left = FREQS[(alice, bob, carol).index(gone)]
        a, b = stay
        fa, fb = (FREQS[(alice, bob, carol).index(ua)] for ua in stay)
        _assert_hears(a, fa, [fb], [left])
        _assert_hears(b, fb, [fa], [left])
        a.hangup()
        b.wait_for("CALL_CLOSED")


def test_a_busy_third_party_gives_the_call_back(box3, tones):
    pbx = box3
    with ExitStack() as stack:
        alice, bob, carol = _phones(stack, pbx, tones)
        _talking_then_dialling(pbx, alice, bob)
        alice.send_dtmf("203#")
        carol.wait_for("CALL_INCOMING")
        carol.reject()
        wait(lambda: _states(pbx) == [], timeout=5, what="the call given back")
        time.sleep(2.0)
        assert alice.call_state() == "CALL_ESTABLISHED" and bob.call_state() == "CALL_ESTABLISHED"
        assert [sorted(c["parties"]) for c in pbx.svc.active_calls()] == [["201", "202"]]
        _assert_hears(alice, FREQS[0], [FREQS[1]], [FREQS[2]])
        _assert_hears(bob, FREQS[1], [FREQS[0]], [FREQS[2]])
        alice.hangup()
        bob.wait_for("CALL_CLOSED")


def test_the_code_as_sip_info_and_cancelling_by_hash(pbx):
    async def main():
        async with _registered(pbx, "201", "202") as (alice, bob):
            req, _incoming, ok = await _answered_call(alice, bob, alice.request(
                "INVITE", "sip:202@127.0.0.1", "201", body=sdp(4000)))
            states = []
            for key in [*pbx.cfg.pbx.feature_codes.conference, "#", "5"]:
                alice.send(in_dialog(alice, "INFO", ok, req.call_id, f"Signal={key}\r\nDuration=160\r\n".encode(),
                                     "application/dtmf-relay"))
                if key == "5":  # the call is given back: keys pass to bob again
                    info = await next_request(bob, "INFO")
                    assert info.body.decode().startswith("Signal=5")
                    answer(bob, info, 200, "bobtag")
                assert (await alice.final()).status == 200
                if key == "#":
                    await asyncio.to_thread(wait, lambda: _states(pbx) == [], timeout=5, what="the call given back")
                if key == "3":  # dialling: alice's phone holds; the box answers it, bob is not asked
                    alice.send(in_dialog(alice, "INVITE", ok, req.call_id, sdp(4000, "a=sendonly\r\n")))
                    held = await next_response(alice, 200)
                    assert b"a=recvonly" in held.body
                    alice.send(in_dialog(alice, "ACK", held, req.call_id))
                    with pytest.raises(TimeoutError):
                        await next_request(bob, "INVITE", timeout=0.3)
                states.append(await asyncio.to_thread(_states, pbx))
            with pytest.raises(TimeoutError):
                await next_request(bob, "INFO", timeout=0.3)
            return states
    assert run(main()) == [[], ["dialling"], [], []]
