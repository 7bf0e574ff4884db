"""ConferenceCall with real baresip phones, each sending its own tone and recording what it hears: alice
calls bob, a CSTA client (tests/services/cti/cstaclient.py) makes bob consult carol (alice is held), then
joins the held and the active call into a three-party conference (the PBX's ad-hoc room, as *3 does):
each phone hears the two others and not itself (Goertzel powers on its recording), and the monitors get
ConferencedEvent with both old calls and the three connections. The JSON API does the same by
POST /calls/{held}/conference with the active call, and its event stream says `conferenced`."""
from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from tests.services.pbx import test_channel as ch
from tests.services.pbx.baresip import have_baresip
from tests.services.pbx.conftest import ALICE, BOB, CAROL
from tests.services.pbx.test_conference import HEARD, OWN, _so_far
from tests.services.pbx.test_conference_mixer import spectrum_peaks

from . import test_jsonapi as jsonapi_tokens
from .cstaclient import conn
from .test_csta_calls import crm
from .test_jsonapi import api, events_socket, next_of, rest  # noqa: F401 (api: a fixture)

CRM_TOKEN = jsonapi_tokens.CRM  # scope 202, 203
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
FREQS = [520.0, 1020.0, 1250.0]  # alice, bob, carol


def _phones(stack, pbx, tmp_path) -> list[ch.AudioBaresip]:
    uas = []
    for who, source in zip((ALICE, BOB, CAROL), ch.tone_files(tmp_path, FREQS), strict=True):
        ua = stack.enter_context(ch.AudioBaresip(who["login"], source, user=who["extension"],
                                                 password=who["sip_secret"], registrar=pbx.registrar,
                                                 codecs=("pcmu",), auto_answer=who is BOB))
        ua.register()
        uas.append(ua)
    return uas


def _hears(ua, own: float, seconds: float = 2.0) -> None:
    samples, rate = _so_far(ua, seconds)
    assert len(samples) > rate, f"{ua.name} recorded {len(samples)} samples: {sorted(p.name for p in ua.dir.iterdir())}"
    peaks = spectrum_peaks(samples, rate, FREQS)
    assert peaks[own] < OWN, f"the {own:.0f} Hz phone hears itself: {peaks}"
    for f in FREQS:
        if f != own:
            assert peaks[f] > HEARD, f"the {own:.0f} Hz phone does not hear {f:.0f} Hz: {peaks}"


def test_conference_call_joins_the_held_and_the_consultation_call(box, tmp_path):
    with ExitStack() as stack:
        alice, bob, carol = _phones(stack, box.pbx, tmp_path)
        c = stack.enter_context(crm(box))
        ref_b, ref_c = c.monitor("202"), c.monitor("203")
        alice.dial("202")  # bob's phone answers by itself
        alice.wait_for("CALL_ESTABLISHED")
        first = c.wait_event("EstablishedEvent", monitorCrossRefID=ref_b).value("establishedConnection", "callID")
        early = c.csta("ConferenceCall", conn("heldCall", first, "202") + conn("activeCall", first, "202"))
        assert early.name == "CSTAErrorCode", early
        consult = c.csta("ConsultationCall", conn("existingCall", first, "202") +
                         "<consultedDevice>203</consultedDevice>")
        assert consult.name == "ConsultationCallResponse", consult
        second = consult.value("initiatedCall", "callID")
        c.wait_event("HeldEvent", monitorCrossRefID=ref_b, callID=first)
        carol.answer()
        c.wait_event("EstablishedEvent", monitorCrossRefID=ref_c, callID=second)
        carol.wait_rtp(rx=25)
        outside = c.csta("ConferenceCall", conn("heldCall", first, "201") + conn("activeCall", second, "201"))
        assert outside.value("operation") == "privilegeViolationOnSpecifiedDevice"  # 201 is not in crm's scope
        done = c.csta("ConferenceCall", conn("heldCall", first, "202") + conn("activeCall", second, "202"))
        assert done.name == "ConferenceCallResponse", done
        assert done.value("conferenceCall", "callID") == second
        assert sorted(done.all("deviceID")) == sorted(["202"] + ["201", "202", "203"] * 3)  # new, old, endpoint
        for ref in (ref_b, ref_c):
            ev = c.wait_event("ConferencedEvent", monitorCrossRefID=ref)
            assert ev.value("primaryOldCall", "callID") == first and ev.value("secondaryOldCall", "callID") == second
            assert ev.value("conferencingDevice", "deviceIdentifier") == "202"
            assert ev.value("addedParty", "deviceIdentifier") == "201"
            assert ev.value("cause") == "conference"
        snap = c.csta("SnapshotCall", f"<snapshotObject><callID>{second}</callID><deviceID>202</deviceID>"
                                      f"</snapshotObject>")
        assert sorted(snap.all("deviceIdentifier")) == ["201", "202", "203"], snap
        [room] = [r for r in box.pbx.svc.conference_rooms() if r["adhoc"]]
        assert sorted(p["label"] for p in room["participants"]) == ["201", "202", "203"]
        deadline = time.monotonic() + 10
        while len([e for e in bob.events if e.get("type") == "CALL_CLOSED"]) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [e for e in bob.events if e.get("type") == "CALL_CLOSED"], "bob's held call was not ended"
        time.sleep(3.0)
        for ua, own in zip((alice, bob, carol), FREQS, strict=True):
            _hears(ua, own)
        carol.hangup()  # the two others go on
        carol.wait_for("CALL_CLOSED")
        c.wait_event("ConnectionClearedEvent", monitorCrossRefID=ref_b, deviceID="203")
        time.sleep(2.5)
        peaks = spectrum_peaks(*_so_far(alice, 1.5), FREQS)
        assert peaks[FREQS[1]] > HEARD and peaks[FREQS[2]] < OWN, peaks
        alice.hangup()
        bob.wait_for("CALL_CLOSED")


def test_json_api_conference_joins_the_held_and_the_consultation_call(api, tmp_path):  # noqa: F811 (the fixture)
    with ExitStack() as stack:
        alice, bob, carol = _phones(stack, api.pbx, tmp_path)
        ws = stack.enter_context(events_socket(api, CRM_TOKEN, devices=["202"]))
        next_of(ws, lambda m: m["type"] == "hello")
        call_of = lambda event: next_of(ws, lambda m: m["type"] == "call" and m["event"] == event)  # noqa: E731
        alice.dial("202")
        alice.wait_for("CALL_ESTABLISHED")
        first = call_of("established")["call"]
        time.sleep(1.2)  # baresip names a call's recording by the second it started: bob's two calls apart
        status, consult = rest(api, "POST", f"/api/v1/calls/{first}/consult", CRM_TOKEN, {"device": "202", "to": "203"})
        assert status == 200, consult
        carol.answer()
        second = consult["call"]
        next_of(ws, lambda m: m["type"] == "call" and m["event"] == "established" and m["call"] == second)
        carol.wait_rtp(rx=25)  # baresip's recording of a call that has just started may stay empty for seconds
        status, missing = rest(api, "POST", f"/api/v1/calls/{first}/conference", CRM_TOKEN, {"device": "202"})
        assert status == 400, missing
        status, done = rest(api, "POST", f"/api/v1/calls/{first}/conference", CRM_TOKEN,
                            {"device": "202", "with": second})
        assert (status, done) == (200, {"call": second}), done
        ev = call_of("conferenced")
        assert ev["call"] == second and sorted(ev["connections"]) == ["201", "202", "203"]
        time.sleep(3.0)
        for ua, own in zip((alice, bob, carol), FREQS, strict=True):
            _hears(ua, own)
        alice.hangup()
        next_of(ws, lambda m: m["type"] == "call" and m["event"] == "cleared" and m["device"] == "201")
        carol.hangup()
        bob.wait_for("CALL_CLOSED")
