"""The personal assistant with real peers: alice (201) does not answer (not registered), bob calls her,
hears her assistant's choices and presses 2 for "mobile": the call goes out through the carrier trunk
(a second PBX on 127.0.0.2 playing the carrier, as test_trunks.py does) to the mobile, another baresip
UA registered there, and bob and the mobile hear each other. Choice 1 leaves a voicemail message."""
from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from services.pbx.prompts import PromptLibrary
from services.pbx.voicemail.pin import hash_pin

from . import test_channel as ch
from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, seed_prompts
from .pbxrunner import PbxRunner, config, user
from .test_trunks import LINE, wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
MOBILE = user("mobile", "6100", "mobilesecret1", "Alice's mobile")
ASSISTANT = {"enabled": True, "mobile": "6100", "greeting_text": "Alice here, I cannot take your call.",
             "choices": [{"kind": "voicemail"}, {"kind": "mobile"}]}


def test_the_mobile_choice_goes_out_through_the_carrier(tmp_path, prompt_set):
    seed_prompts(prompt_set, tmp_path / "box")
    with ExitStack() as stack:
        carrier = stack.enter_context(PbxRunner(tmp_path / "carrier", config([LINE, MOBILE]), host="127.0.0.2"))
        alice = dict(ALICE, voicemail_pin_hash=hash_pin("4321"))
        box = stack.enter_context(PbxRunner(tmp_path / "box", config(
            [alice, BOB], digest_algorithms=["MD5"], codecs=["PCMU"], permissions={"alice": "national"},
            trunks=[{"name": "carrier", "host": "127.0.0.2", "port": carrier.port, "username": "5000",
                     "auth_password": LINE["sip_secret"]}],
            routes=[{"name": "out", "prefix": "6", "trunks": ["carrier"]}],
            extensions={"201": {"no_answer_timeout": 5, "assistant": ASSISTANT}})))
        PromptLibrary(tmp_path / "box", "en").ensure()
        mobile = stack.enter_context(Baresip("mobile", user="6100", password=MOBILE["sip_secret"],
                                             registrar=carrier.registrar, addr="127.0.0.2", auto_answer=True))
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=box.registrar))
        for ua in (mobile, bob):
            ua.register()
        bob.dial("201")           # alice has no phone registered: unavailable, straight to her assistant
        bob.wait_for("CALL_ESTABLISHED")
        time.sleep(2.0)
        bob.send_dtmf("2")        # "press 2 to reach my mobile"
        incoming = mobile.wait_for("CALL_ESTABLISHED", timeout=20)
        assert incoming["peeruri"].startswith("sip:5000@"), incoming  # our line at the carrier
        mobile.wait_rtp(rx=30, tx=30)
        before = bob.rtp_stats()["rx"]
        wait(lambda: bob.rtp_stats()["rx"] > before + 30, what="the mobile's audio at bob")
        assert {t["name"]: t["channels_in_use"] for t in box.svc.trunks()} == {"carrier": 1}
        bob.hangup()
        mobile.wait_for("CALL_CLOSED")
    dialled = [r["dialled"] for r in carrier.svc.cdr_query()]
    assert dialled == ["6100"], dialled


def test_the_voicemail_choice_takes_a_message(tmp_path, prompt_set):
    seed_prompts(prompt_set, tmp_path / "box")
    alice = dict(ALICE, voicemail_pin_hash=hash_pin("4321"))
    cfg = config([alice, BOB], digest_algorithms=["MD5"], codecs=["PCMU"], voicemail={"silence_stop": 2},
                 extensions={"201": {"assistant": ASSISTANT}})
    said = ch.speech(tmp_path / "said.wav", "Hello Alice, please call me back about the contract.")
    quiet = ch.write_wav(tmp_path / "quiet.wav", [0] * 8000 * 40)
    message = ch.write_wav(tmp_path / "msg.wav", [0] * 4000 + ch.read_wav(said)[0] + [0] * 8000 * 10)
    with ExitStack() as stack:
        box = stack.enter_context(PbxRunner(tmp_path / "box", cfg))
        PromptLibrary(tmp_path / "box", "en").ensure()
        bob = stack.enter_context(ch.AudioBaresip("bob", quiet, user="202", password=BOB["sip_secret"],
                                                  registrar=box.registrar, codecs=("pcmu",)))
        bob.register()
        bob.dial("201")
        bob.wait_for("CALL_ESTABLISHED")
        time.sleep(2.0)
        bob.send_dtmf("1")        # voicemail: the greeting, the beep, then bob's message
        box_dir = box.ctx.state_dir("pbx") / "voicemail" / "201"
        # bob speaks once the box records (its envelope appears at the beep), as a person does when they
        # hear the beep (baresip's ausrc; test_attendant.py does the same): no fixed lead-in of silence
        wait(lambda: list(box_dir.glob(".rec-*.json")), timeout=40, what="the recording's start")
        bob.command("ausrc", f"aufile,{message}")
        [wav] = wait(lambda: list((box_dir / "INBOX").glob("*.wav")), timeout=40,
                     what="the message in alice's box")
    stored = ch.read_wav(wav)[0]
    score, _ = ch.best_correlation(ch.envelope(ch.read_wav(said)[0]), ch.envelope(stored), 1500)
    assert score > ch.SAME, f"the message is not what bob said ({score:.3f}, {len(stored) / 8000:.1f} s)"
