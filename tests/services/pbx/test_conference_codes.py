"""Codes keyed during a conference, with real baresip phones sending DTMF (RFC 4733) and each its own
tone, recording what they hear: the count key says how many take part (the prompt replaces the room
for who asked), a leader locks the room (a newcomer hears it is locked and is hung up; a participant
who is no leader cannot), removes the one who joined last (no longer heard), unlocks it again; the mute
key takes a phone out of what the others hear and puts it back. A phone in the room REFERs its other
party into it (a phone's own conference button, RFC 4579)."""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import ExitStack
from urllib.parse import quote

import pytest

from services.pbx.prompts import PromptLibrary
from services.pbx.sip.message import Request, Response, response_to

from . import test_channel as ch
from .baresip import have_baresip
from .conftest import ALICE, BOB, CAROL, run, seed_prompts
from .pbxrunner import PbxRunner, config, user
from .rawphone import in_dialog, sdp
from .sipclient import SipClient
from .test_conference import FREQS, HEARD, OWN, _join, _participants, _phone, _so_far
from .test_conference_mixer import spectrum_peaks
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
ERIN = user("erin", "205", "erinsecret12", "Erin Blanc")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return ch.tone_files(tmp_path_factory.mktemp("tones"), FREQS[:4])


@pytest.fixture(scope="module")
def pbx(tmp_path_factory, prompt_set):
    data = tmp_path_factory.mktemp("pbx")
    seed_prompts(prompt_set, data)
    rooms = [{"number": "800", "name": "main", "alone": "prompt", "leaders": ["201"]}]
    cfg = config([ALICE, BOB, CAROL, ERIN], digest_algorithms=["MD5"], conference_rooms=rooms)
    with PbxRunner(data, cfg) as runner:
        PromptLibrary(data, "en").ensure()
        yield runner


def _logged(caplog, text: str, timeout: float = 5.0) -> None:
    wait(lambda: any(text in r.getMessage() for r in caplog.records), timeout=timeout, what=repr(text))


def _hears(ua, seconds: float = 1.5) -> dict[float, float]:
    return spectrum_peaks(*_so_far(ua, seconds), FREQS[:4])


def test_count_lock_remove_and_mute_codes(pbx, tones, caplog):
    caplog.set_level(logging.INFO, "officebox.pbx.conference")
    alice_f, bob_f, carol_f = FREQS[:3]
    with ExitStack() as stack:
        alice, bob, carol = (_phone(stack, pbx, who, tones[i]) for i, who in enumerate((ALICE, BOB, CAROL)))
        _join(pbx, [alice, bob, carol])
        time.sleep(2.0)
        assert _hears(bob)[alice_f] > HEARD

        bob.send_dtmf("1")  # the count: said to bob, instead of the room
        _logged(caplog, "202 hears the count (3)")
        time.sleep(1.2)
        during = _hears(bob, 1.0)
        assert during[alice_f] < HEARD and during[carol_f] < HEARD, during
        assert max(ch.envelope(_so_far(bob, 1.0)[0])) > 300, "bob hears no prompt"
        assert _hears(alice, 1.0)[bob_f] > HEARD  # the others still hear bob

        bob.send_dtmf("2")  # bob is no leader: the room stays open
        _logged(caplog, "202 keyed a leader's code (lock)")
        alice.send_dtmf("2")
        _logged(caplog, "main locked by 201")
        erin = _phone(stack, pbx, ERIN, tones[3])
        erin.dial("800")
        erin.wait_for("CALL_ESTABLISHED")
        erin.wait_for("CALL_CLOSED", timeout=15)
        assert [p["label"] for p in _participants(pbx, "main")] == ["201", "202", "203"]

        alice.send_dtmf("3")  # the last one in goes
        carol.wait_for("CALL_CLOSED", timeout=10)
        _logged(caplog, "201 removed 203 (the last one in)")
        assert [p["label"] for p in _participants(pbx, "main")] == ["201", "202"]
        time.sleep(3.0)
        heard = _hears(bob)
        assert heard[alice_f] > HEARD and heard[carol_f] < OWN, heard

        bob.send_dtmf("*")  # muted: alice no longer hears him; again: she does
        wait(lambda: [p["muted"] for p in _participants(pbx, "main")] == [False, True], timeout=5, what="bob muted")
        time.sleep(2.0)
        assert _hears(alice)[bob_f] < OWN
        bob.send_dtmf("*")
        wait(lambda: [p["muted"] for p in _participants(pbx, "main")] == [False, False], timeout=5,
             what="bob unmuted")
        time.sleep(2.0)
        assert _hears(alice)[bob_f] > HEARD

        alice.send_dtmf("2")  # unlocked: erin gets in
        _logged(caplog, "main unlocked by 201")
        erin.dial("800")
        erin.wait_for("CALL_ESTABLISHED")
        wait(lambda: len(_participants(pbx, "main")) == 3, timeout=10, what="erin in the room")
        for ua in (alice, bob, erin):
            ua.hangup()
            ua.wait_for("CALL_CLOSED")
    wait(lambda: _participants(pbx, "main") == [], timeout=5, what="the room to empty")


byes: list[str] = []


async def _pump(x: SipClient, until, timeout: float = 15.0):
    """Messages to the scripted phone until `until(msg)`; requests of the box (NOTIFY, BYE) answered 200
    and kept in `byes` (the Call-IDs of the BYEs)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        msg = await x.recv(max(0.01, end - loop.time()))
        if isinstance(msg, Request) and msg.method in ("NOTIFY", "BYE"):
            x.send(response_to(msg, 200))
            if msg.method == "BYE":
                byes.append(msg.call_id)
        if until(msg):
            return msg


async def _call(x: SipClient, number: str, port: int, pbx) -> Response:
    inv = x.request("INVITE", f"sip:{number}@127.0.0.1:{pbx.port}", "201", body=sdp(port))
    x.send(inv)
    x.answer_challenge(inv, await _pump(x, lambda m: isinstance(m, Response) and m.status == 407), "201",
                       ALICE["sip_secret"])
    ok = await _pump(x, lambda m: isinstance(m, Response) and m.cseq[1] == "INVITE" and m.status >= 200)
    assert ok.status == 200, ok.status
    x.send(in_dialog(x, "ACK", ok, ok.call_id))
    return ok


def test_a_phone_refers_its_other_party_into_the_room_it_is_in(pbx, tones):
    """A phone's conference button with a network conference (Yealink, Snom, Polycom; RFC 4579 5.5):
    alice's scripted phone talks to bob, calls the room, and sends REFER in that dialog with Refer-To
    naming bob with Replaces of her dialog with him: 202, NOTIFY 200; bob is in the room, hears carol
    there and is heard by her; alice's call with bob ends."""
    with ExitStack() as stack:
        carol = _phone(stack, pbx, CAROL, tones[2])
        _join(pbx, [carol])
        bob = _phone(stack, pbx, BOB, tones[1])

        async def alice():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                assert (await x.register("201", ALICE["sip_secret"])).status == 200
                answering = asyncio.ensure_future(asyncio.to_thread(bob.answer))
                with_bob = await _call(x, "202", 4990, pbx)
                await answering
                room = await _call(x, "800", 4992, pbx)
                replaces = quote(f"{with_bob.call_id};to-tag={with_bob.to_tag};from-tag={x.tag}", safe="")
                refer = in_dialog(x, "REFER", room, room.call_id)
                refer.add("Refer-To", f"<sip:202@127.0.0.1:{pbx.port}?Replaces={replaces}>")
                refer.add("Referred-By", f"<sip:201@127.0.0.1:{pbx.port}>")
                x.send(refer)
                accepted = await _pump(x, lambda m: isinstance(m, Response) and m.cseq[1] == "REFER")
                done = await _pump(x, lambda m: isinstance(m, Request) and m.method == "NOTIFY"
                                   and b"SIP/2.0 1" not in m.body)
                if with_bob.call_id not in byes and done.body.startswith(b"SIP/2.0 200"):
                    await _pump(x, lambda m: with_bob.call_id in byes, timeout=10)
                return accepted.status, done.body, with_bob.call_id in byes
        status, final, bye = run(alice())
        assert status == 202 and final.startswith(b"SIP/2.0 200"), (status, final)
        assert bye, "alice's call with bob did not end"
        wait(lambda: [p["label"] for p in _participants(pbx, "main")][-1:] == ["202"], timeout=10, what="bob in")
        time.sleep(3.0)
        heard_bob, heard_carol = _hears(bob), _hears(carol)
        assert heard_bob[FREQS[2]] > HEARD and heard_carol[FREQS[1]] > HEARD, (heard_bob, heard_carol)
        for ua in (bob, carol):
            ua.hangup()
            ua.wait_for("CALL_CLOSED")
