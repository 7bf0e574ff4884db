"""AnswerCall: the box sends the ringing phone a NOTIFY `Event: talk` in the early dialog of its INVITE (the
BroadSoft remote answer desk phones honour). A scripted phone that honours it answers by itself: the CSTA
client (cstaclient.py) gets AnswerCallResponse and EstablishedEvent, and the real baresip caller's tone
reaches the scripted phone's RTP port (its energy measured) while the scripted phone's packets reach
baresip. Debian's baresip (1.0.0) honours neither the talk event nor auto-answer headers: AnswerCall on it
is refused with the reason, and the phone rings on until answered at the handset."""
from __future__ import annotations

import asyncio
import math
import socket
import struct
import threading
import time
from contextlib import ExitStack

import pytest

from tests.services.pbx.baresip import have_baresip
from tests.services.pbx.conftest import BOB
from tests.services.pbx.rawphone import answer, next_request, sdp
from tests.services.pbx.sipclient import SipClient

from .cstaclient import conn
from .test_csta_calls import crm, phone

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def _ulaw(byte: int) -> int:
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 7, byte & 0x0F
    value = ((mantissa << 3) + 0x84) << exponent
    return -(value - 0x84) if sign else value - 0x84


def test_baresip_cannot_be_answered_remotely_and_rings_on(box):
    with ExitStack() as stack:
        alice, bob = phone(stack, box.pbx, "201"), phone(stack, box.pbx, "202")
        c = stack.enter_context(crm(box))
        ref = c.monitor("202")
        alice.dial("202")
        bob.wait_for("CALL_INCOMING")
        call = c.wait_event("DeliveredEvent", monitorCrossRefID=ref).value("connection", "callID")
        refused = c.csta("AnswerCall", conn("callToBeAnswered", call, "202"))
        assert refused.value("operation") == "requestIncompatibleWithObject", refused
        assert "talk" in refused.value("privateData", "private"), refused
        time.sleep(0.5)
        assert bob.call_state() == "CALL_INCOMING" and alice.call_state() == "CALL_RINGING"  # it rings on
        assert c.csta("AnswerCall", conn("callToBeAnswered", call, "201")).value(
            "operation") == "privilegeViolationOnSpecifiedDevice"
        bob.command("accept")
        c.wait_event("EstablishedEvent", monitorCrossRefID=ref, callID=call)
        again = c.csta("AnswerCall", conn("callToBeAnswered", call, "202"))
        assert again.value("stateIncompatibility") == "invalidConnectionState", again
        alice.hangup()
        bob.wait_for("CALL_CLOSED")


def test_a_phone_honouring_the_talk_event_is_answered_and_audio_flows(box):
    async def scripted_bob(rtp: socket.socket, seen: dict) -> None:
        async with SipClient(("127.0.0.1", box.pbx.port)) as client:
            assert (await client.register("202", BOB["sip_secret"])).status == 200
            seen["registered"].set()
            invite = await next_request(client, "INVITE", timeout=15)
            answer(client, invite, 180, "bobtag")
            notify = await next_request(client, "NOTIFY", timeout=15)
            seen["notify"] = notify
            answer(client, notify, 200, "bobtag")
            answer(client, invite, 200, "bobtag", sdp(rtp.getsockname()[1]))
            await next_request(client, "ACK")
            await next_request(client, "BYE", timeout=30)

    seen: dict = {"registered": None}
    with ExitStack() as stack:
        rtp = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(0.2)
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        seen["registered"] = asyncio.Event()
        done: list = []
        thread = threading.Thread(target=lambda: done.append(loop.run_until_complete(
            asyncio.wait_for(scripted_bob(rtp, seen), 60))), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not seen["registered"].is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        alice = phone(stack, box.pbx, "201")
        c = stack.enter_context(crm(box))
        ref = c.monitor("202")
        alice.dial("202")
        call = c.wait_event("DeliveredEvent", monitorCrossRefID=ref).value("connection", "callID")
        answered = c.csta("AnswerCall", conn("callToBeAnswered", call, "202"))
        assert answered.name == "AnswerCallResponse", answered
        assert seen["notify"].get("Event") == "talk"
        assert seen["notify"].to_tag == "bobtag"  # in the early dialog of the ringing INVITE
        established = c.wait_event("EstablishedEvent", monitorCrossRefID=ref, callID=call)
        assert established.value("answeringDevice", "deviceIdentifier") == "202"
        alice.wait_for("CALL_ESTABLISHED")
        samples, peer, seq = [], None, 0
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            try:
                packet, peer = rtp.recvfrom(2048)
            except TimeoutError:
                continue
            if len(packet) > 12 and packet[1] & 0x7F == 0:
                samples += [_ulaw(b) for b in packet[12:]]
            seq += 1  # bob speaks too: PCMU silence back to the box
            rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, 0x1234) + b"\xff" * 160, peer)
        assert len(samples) > 8000, f"{len(samples)} samples of alice's audio reached bob"
        rms = math.sqrt(sum(x * x for x in samples[-8000:]) / 8000)
        assert rms > 1000, rms  # baresip's 440 Hz tone, not silence
        assert alice.rtp_stats()["rx"] > 25
        alice.hangup()
        thread.join(15)
        assert done, "the scripted phone did not see the call end"
