"""CSTA monitoring and call control of real baresip phones: the events a monitor gets when one phone
calls another, MakeCall (the user's phone rings first), Hold/Retrieve (what the other party hears:
the holder's tone, then the box's music, then the tone again), consultation and transfer, single-step
transfer. The client is tests/services/cti/cstaclient.py (written from the standards)."""
from __future__ import annotations

import shutil
import time
from contextlib import ExitStack

import pytest

from tests.services.pbx.baresip import Baresip, have_baresip
from tests.services.pbx.conftest import ALICE, BOB, CAROL
from tests.services.pbx.test_channel import AudioBaresip
from tests.services.pbx.test_moh import spectrum, spread
from tests.services.pbx.test_moh_hold import share_at, tone_file

from .conftest import APP_PASSWORD, PASSWORDS
from .cstaclient import CstaClient, conn

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
SECRETS = {"201": ALICE["sip_secret"], "202": BOB["sip_secret"], "203": CAROL["sip_secret"]}


def phone(stack: ExitStack, pbx, ext: str, **kw) -> Baresip:
    ua = stack.enter_context(Baresip(f"p{ext}", user=ext, password=SECRETS[ext], registrar=pbx.registrar, **kw))
    ua.register()
    return ua


def crm(box) -> CstaClient:
    c = CstaClient(box.cti.tcp)
    assert c.start_session("crm", APP_PASSWORD).name == "StartApplicationSessionPosResponse"
    return c


@pytest.mark.parametrize("tls", [False, True])
def test_monitors_see_delivered_established_cleared_in_order(box, tls):
    with ExitStack() as stack:
        bob, carol = phone(stack, box.pbx, "202"), phone(stack, box.pbx, "203")
        c = stack.enter_context(CstaClient(box.cti.tls if tls else box.cti.tcp, tls=tls))
        assert c.start_session("crm", APP_PASSWORD).name == "StartApplicationSessionPosResponse"
        ref_b, ref_c = c.monitor("202"), c.monitor("203")
        bob.dial("203")
        delivered = c.wait_event("DeliveredEvent", keep=True, monitorCrossRefID=ref_c)
        call = delivered.value("connection", "callID")
        assert delivered.value("connection", "deviceID") == "203"
        assert delivered.value("alertingDevice", "deviceIdentifier") == "203"
        assert delivered.value("callingDevice", "deviceIdentifier") == "202"
        assert delivered.value("localConnectionInfo") == "alerting"
        snap = c.csta("SnapshotCall", f"<snapshotObject><callID>{call}</callID><deviceID>203</deviceID>"
                                      f"</snapshotObject>")
        assert sorted(snap.all("localConnectionState")) == ["alerting", "initiated"], snap
        carol.answer()
        bob.wait_for("CALL_ESTABLISHED")
        established = c.wait_event("EstablishedEvent", keep=True, monitorCrossRefID=ref_b)
        assert established.value("answeringDevice", "deviceIdentifier") == "203"
        device = c.csta("SnapshotDevice", "<snapshotObject>202</snapshotObject>")
        assert device.all("callID") == [call] and device.all("localConnectionState") == ["connected"]
        bob.hangup()
        carol.wait_for("CALL_CLOSED")
        cleared = c.wait_event("ConnectionClearedEvent", keep=True, monitorCrossRefID=ref_c, deviceID="202")
        assert cleared.value("releasingDevice", "deviceIdentifier") == "202"
        c.wait_event("ConnectionClearedEvent", keep=True, monitorCrossRefID=ref_b, deviceID="203")
        c.drain(0.5)
        for ref in (ref_b, ref_c):
            seen = [(e.name, e.all("deviceID")[0]) for e in c.events if e.value("monitorCrossRefID") == ref]
            assert {e.all("callID")[0] for e in c.events if e.value("monitorCrossRefID") == ref} == {call}
            if ref == ref_b:  # the calling device also sees its own start
                assert seen[:2] == [("ServiceInitiatedEvent", "202"), ("OriginatedEvent", "202")], seen
                seen = seen[2:]
            assert seen == [("DeliveredEvent", "203"), ("EstablishedEvent", "203"),
                            ("ConnectionClearedEvent", "202"), ("ConnectionClearedEvent", "203")], seen
        assert c.csta("SnapshotDevice", "<snapshotObject>202</snapshotObject>").all("callID") == []


def test_make_call_rings_the_users_phone_first_then_the_destination(box):
    with ExitStack() as stack:
        bob, carol = phone(stack, box.pbx, "202"), phone(stack, box.pbx, "203")
        c = stack.enter_context(CstaClient(box.cti.tcp))
        assert c.start_session("bob", PASSWORDS["bob"]).name == "StartApplicationSessionPosResponse"
        ref = c.monitor("202")
        made = c.csta("MakeCall", "<callingDevice>202</callingDevice><calledDirectoryNumber>203"
                                  "</calledDirectoryNumber>")
        assert made.name == "MakeCallResponse", made
        call = made.value("callingDevice", "callID")
        incoming = bob.wait_for("CALL_INCOMING")
        assert "203" in incoming.get("peeruri", "") + incoming.get("param", "")  # bob's phone shows whom he calls
        c.wait_event("ServiceInitiatedEvent", monitorCrossRefID=ref, callID=call)
        time.sleep(1.0)
        assert not any(e.get("type") == "CALL_INCOMING" for e in carol.events)  # not before bob picks up
        bob.command("accept")
        c.wait_event("OriginatedEvent", monitorCrossRefID=ref, callID=call)
        carol.answer()
        established = c.wait_event("EstablishedEvent", monitorCrossRefID=ref, callID=call)
        assert established.value("answeringDevice", "deviceIdentifier") == "203"
        rx_b, rx_c = bob.rtp_stats().get("rx", 0), carol.rtp_stats().get("rx", 0)
        bob.wait_rtp(rx=rx_b + 25)
        carol.wait_rtp(rx=rx_c + 25)
        cleared = c.csta("ClearConnection", conn("connectionToBeCleared", call, "202"))
        assert cleared.name == "ClearConnectionResponse", cleared
        carol.wait_for("CALL_CLOSED")
        c.wait_event("ConnectionClearedEvent", monitorCrossRefID=ref, callID=call)
        answer = c.csta("AnswerCall", conn("callToBeAnswered", call, "202"))
        assert answer.name == "CSTAErrorCode"  # nothing to answer, and a SIP phone cannot be made to


@pytest.mark.skipif(not shutil.which("sox"), reason="sox is needed")
def test_hold_and_retrieve_change_what_the_other_party_hears(box, tmp_path):
    with ExitStack() as stack:
        tone = tone_file(tmp_path / "tone.wav", 1900, 40)
        bob = stack.enter_context(AudioBaresip("bob", tone, user="202", password=SECRETS["202"],
                                               registrar=box.pbx.registrar))
        carol = stack.enter_context(AudioBaresip("carol", tone_file(tmp_path / "quiet.wav", 600, 40), user="203",
                                                 password=SECRETS["203"], registrar=box.pbx.registrar))
        bob.register()
        carol.register()
        c = stack.enter_context(crm(box))
        ref = c.monitor("202")
        bob.dial("203")
        carol.answer()
        bob.wait_for("CALL_ESTABLISHED")
        call = c.wait_event("EstablishedEvent", monitorCrossRefID=ref).value("establishedConnection", "callID")
        start = time.monotonic()
        rx_before = bob.rtp_stats()["rx"]
        time.sleep(4)
        rx_before = bob.rtp_stats()["rx"] - rx_before
        held_at = time.monotonic() - start
        assert c.csta("HoldCall", conn("callToBeHeld", call, "202")).name == "HoldCallResponse"
        held = c.wait_event("HeldEvent", monitorCrossRefID=ref)
        assert held.value("holdingDevice", "deviceIdentifier") == "202" and held.value("localConnectionInfo") == "hold"
        again = c.csta("HoldCall", conn("callToBeHeld", call, "202"))
        assert again.value("stateIncompatibility") == "invalidConnectionState"
        rx_bob = bob.rtp_stats()["rx"]
        time.sleep(8)
        rx_held = bob.rtp_stats()["rx"] - rx_bob
        assert rx_held < rx_before / 4, (rx_held, rx_before)  # the holder no longer hears carol
        retrieved_at = time.monotonic() - start
        assert c.csta("RetrieveCall", conn("callToBeRetrieved", call, "202")).name == "RetrieveCallResponse"
        assert c.wait_event("RetrievedEvent", monitorCrossRefID=ref).value("retrievingDevice",
                                                                            "deviceIdentifier") == "202"
        bob.wait_rtp(rx=bob.rtp_stats()["rx"] + 50)
        time.sleep(4)
        bob.hangup()
        carol.wait_for("CALL_CLOSED")
        heard = shutil.copy(carol.heard(), tmp_path / "carol-heard.wav")
    before = spectrum(heard, 1.0, held_at - 2.0)
    during = spectrum(heard, held_at + 1.5, retrieved_at - held_at - 3.0)
    after = spectrum(heard, retrieved_at + 1.5, 2.0)
    assert share_at(before, 1900) > 0.8 and share_at(after, 1900) > 0.8  # bob's tone
    share, strong = spread(during)
    assert share_at(during, 1900) < 0.05 and share < 0.5 and strong >= 15, (share, strong)  # music, not bob


def test_consultation_then_transfer_joins_the_two_others(box):
    with ExitStack() as stack:
        alice, carol = phone(stack, box.pbx, "201"), phone(stack, box.pbx, "203")
        bob = phone(stack, box.pbx, "202", auto_answer=True)  # a phone that honours auto-answer
        c = stack.enter_context(crm(box))
        ref = c.monitor("202")
        alice.dial("202")
        alice.wait_for("CALL_ESTABLISHED")
        first = c.wait_event("EstablishedEvent", monitorCrossRefID=ref).value("establishedConnection", "callID")
        consult = c.csta("ConsultationCall", conn("existingCall", first, "202") + "<consultedDevice>203"
                                                                                   "</consultedDevice>")
        assert consult.name == "ConsultationCallResponse", consult
        second = consult.value("initiatedCall", "callID")
        assert c.wait_event("HeldEvent", monitorCrossRefID=ref, callID=first)
        carol.answer()
        c.wait_event("EstablishedEvent", monitorCrossRefID=ref, callID=second)
        done = c.csta("TransferCall", conn("heldCall", first, "202") + conn("activeCall", second, "202"))
        assert done.name == "TransferCallResponse", done
        transferred = c.wait_event("TransferedEvent", monitorCrossRefID=ref)
        assert set(transferred.all("deviceID")) >= {"201", "203"}
        deadline = time.monotonic() + 10
        while len([e for e in bob.events if e.get("type") == "CALL_CLOSED"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len([e for e in bob.events if e.get("type") == "CALL_CLOSED"]) == 2  # bob left both calls
        rx_a, rx_c = alice.rtp_stats()["rx"], carol.rtp_stats()["rx"]
        alice.wait_rtp(rx=rx_a + 25)
        carol.wait_rtp(rx=rx_c + 25)
        [live] = box.pbx.svc.active_calls()
        assert set(live["relay"]) == {"201", "203"}
        alice.hangup()
        carol.wait_for("CALL_CLOSED")


def test_generate_digits_single_step_transfer_and_errors_for_unknown_calls(box):
    with ExitStack() as stack:
        alice, bob, carol = phone(stack, box.pbx, "201"), phone(stack, box.pbx, "202"), phone(stack, box.pbx, "203")
        c = stack.enter_context(crm(box))
        ref = c.monitor("203")
        ref_b = c.monitor("202")
        alice.dial("202")
        bob.answer()
        alice.wait_for("CALL_ESTABLISHED")
        call = c.wait_event("EstablishedEvent", monitorCrossRefID=ref_b).value("establishedConnection", "callID")
        sent = c.csta("GenerateDigits", conn("connectionToSendDigits", call, "202") +
                      "<charactersToSend>12#</charactersToSend>")
        assert sent.name == "GenerateDigitsResponse", sent
        deadline = time.monotonic() + 5
        while alice.dtmf_received != "12#" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alice.dtmf_received == "12#"  # SIP INFO to the other party
        nope = c.csta("SingleStepTransferCall", conn("activeCall", "nosuchcall", "202") +
                      "<transferredTo>203</transferredTo>")
        assert nope.value("operation") == "invalidCallID"
        moved = c.csta("SingleStepTransferCall", conn("activeCall", call, "202") + "<transferredTo>203</transferredTo>")
        assert moved.name == "SingleStepTransferCallResponse", moved
        carol.answer()
        c.wait_event("TransferedEvent", monitorCrossRefID=ref)
        bob.wait_for("CALL_CLOSED")
        carol.wait_rtp(rx=carol.rtp_stats()["rx"] + 25)
        alice.wait_rtp(rx=alice.rtp_stats()["rx"] + 25)
        carol.hangup()
        alice.wait_for("CALL_CLOSED")


def test_diverted_and_failed_events(tmp_path):
    from tests.services.pbx.pbxrunner import PbxRunner

    from .conftest import CtiRunner, document
    cfg = document()
    doc = cfg.model_dump()
    doc["pbx"]["extensions"] = {"203": {"forward_always": "202"}, "202": {"voicemail": False}}  # a rejected call ends
    cfg = type(cfg).model_validate(doc)
    with PbxRunner(tmp_path / "box", cfg) as pbx, CtiRunner(pbx.ctx, cfg) as cti, ExitStack() as stack:
        alice, bob = phone(stack, pbx, "201"), phone(stack, pbx, "202")
        c = stack.enter_context(CstaClient(cti.tcp))
        assert c.start_session("crm", APP_PASSWORD).name == "StartApplicationSessionPosResponse"
        ref_c, ref_b = c.monitor("203"), c.monitor("202")
        alice.dial("203")  # forwarded to bob
        diverted = c.wait_event("DivertedEvent", monitorCrossRefID=ref_c)
        assert diverted.value("divertingDevice", "deviceIdentifier") == "203"
        assert diverted.value("newDestination", "deviceIdentifier") == "202"
        c.wait_event("DeliveredEvent", monitorCrossRefID=ref_b)
        bob.hangup()  # rejects it
        alice.wait_for("CALL_CLOSED")
        bob.dial("299")  # no such number
        failed = c.wait_event("FailedEvent", monitorCrossRefID=ref_b)
        assert failed.value("failingDevice", "deviceIdentifier") == "299"
        assert failed.value("localConnectionInfo") == "fail"
        c.wait_event("ConnectionClearedEvent", monitorCrossRefID=ref_b, deviceID="202")
