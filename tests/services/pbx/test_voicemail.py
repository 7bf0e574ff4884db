"""Voicemail with real baresip phones: bob (202) calls alice (201, not registered, so unavailable) and
leaves a message from espeak-ng speech; alice dials *97, enters her PIN as RFC 4733 events, hears it
and saves or deletes it. Audio is compared as in test_channel.py (10 ms RMS envelopes; the same speech
through G.711 correlates above 0.97, two different sentences below 0.5: SAME = 0.9 separates them, and
each comparison checks a different sentence stays below OTHER as its negative control).
"""
from __future__ import annotations

import logging
import math
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.pbx.prompts import PromptLibrary
from services.pbx.voicemail.pin import hash_pin
from services.pbx.voicemail.store import Mailbox

from . import test_channel as ch
from .baresip import have_baresip
from .conftest import ALICE, BOB, CAROL, seed_prompts
from .pbxrunner import PbxRunner, config
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
PIN = "4321"
SILENCE_STOP = 2


def _cfg(extensions: dict | None = None, **voicemail):
    alice = dict(ALICE, voicemail_pin_hash=hash_pin(PIN))
    return config([alice, BOB, CAROL], digest_algorithms=["MD5"], codecs=["PCMU", "PCMA"], extensions=extensions or {},
                  voicemail={"silence_stop": SILENCE_STOP, **voicemail})


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    return {"said": ch.speech(d / "said.wav", "Hello Alice, this is Bob. Please call me back about the budget."),
            "other": ch.speech(d / "other.wav", "The weather today is sunny with a light breeze from the west."),
            "quiet": ch.write_wav(d / "quiet.wav", [0] * 8000 * 40), "dir": d}


@pytest.fixture(scope="module")
def vmpbx(tmp_path_factory, prompt_set):
    data = tmp_path_factory.mktemp("pbx")
    seed_prompts(prompt_set, data)
    with pytest.MonkeyPatch.context() as mp, PbxRunner(data, _cfg()) as runner:
        # the owner's menu waits KEY_WAIT (8 s) for a key after its offers before it says goodbye; here 3 s
        # (the keys these tests press come during the prompts, well within it)
        mp.setenv("OFFICEBOX_VM_KEY_WAIT", "3")
        PromptLibrary(data, "en").ensure()  # once for the module (a few seconds)
        yield runner


@pytest.fixture
def box(vmpbx):
    """Alice's box, empty, with a short recorded greeting (1 s of 600 Hz) unless a test removes it."""
    vmpbx.reload(_cfg())
    root = vmpbx.ctx.state_dir("pbx") / "voicemail"
    mailbox = Mailbox(root, "201", vmpbx.cfg.pbx.voicemail.limits, vmpbx.svc.core.events.bus)
    for path in mailbox.dir.rglob("*"):
        if path.is_file():
            path.unlink()
    mailbox.publish()
    ch.write_wav(mailbox.dir / "greet-unavailable.wav", [int(5000 * math.sin(2 * math.pi * 600 * n / 8000))
                                                      for n in range(8000)])
    return mailbox


def _other(audio, ref: list[int], sig: list[int], max_lag: int) -> float:
    """The negative control: another sentence, as long as `ref`, against `sig`."""
    other = ch.envelope(ch.read_wav(audio["other"])[0])[:len(ch.envelope(ref))]
    return ch.best_correlation(other, ch.envelope(sig), max_lag)[0]


def _retained(pbx) -> dict:
    return pbx.svc.core.events.bus.retained("pbx.mailbox").get("201")


def _phone(stack, pbx, who: dict, source: Path) -> ch.AudioBaresip:
    ua = stack.enter_context(ch.AudioBaresip(who["login"], source, user=who["extension"],
                                          password=who["sip_secret"], registrar=pbx.registrar, codecs=("pcmu",)))
    ua.register()
    return ua


def _recording_started(mailbox: Mailbox, timeout: float = 20.0) -> float:
    wait(lambda: list(mailbox.dir.glob(".rec-*.json")), timeout=timeout, what="a recording to start")
    return time.monotonic()  # the ch.envelope is written just before the beep


def _greeting_heard(vmpbx, box: Mailbox, audio, talk_seconds: float) -> list[int]:
    """bob calls 201, stays `talk_seconds` once the recording starts, hangs up: what he heard."""
    with ExitStack() as stack:
        bob = _phone(stack, vmpbx, BOB, audio["quiet"])
        bob.dial("201")
        _recording_started(box, timeout=30)
        time.sleep(talk_seconds)  # the end of the greeting reaches the phone
        bob.hangup()
        bob.wait_for("CALL_CLOSED")
        return ch.read_wav(bob.heard())[0]


def _message_of(source: Path, silence_before: float, tmp: Path) -> Path:
    samples, _ = ch.read_wav(source)
    return ch.write_wav(tmp, [0] * int(silence_before * 8000) + samples + [0] * 8000 * 20)


# -- leaving a message ---------------------------------------------------------------------------------
def test_message_left_is_stored_with_its_envelope_and_counted(vmpbx, box, audio, tmp_path):
    started = time.time()
    source = _message_of(audio["said"], 4.0, tmp_path / "bob.wav")  # after greeting (1 s) and beep
    with ExitStack() as stack:
        bob = _phone(stack, vmpbx, BOB, source)
        bob.dial("201")
        bob.wait_for("CALL_ESTABLISHED")
        wait(lambda: box.messages("INBOX"), timeout=30, what="the message in INBOX")
        bob.wait_for("CALL_CLOSED", timeout=20)  # "message recorded, goodbye", then the box hangs up
    [msg] = box.messages("INBOX")
    env = msg.envelope
    assert (env["caller"], env["caller_name"], env["extension"]) == ("202", "Bob Durand", "201")
    assert started - 1 <= env["time"] <= time.time()
    stored, rate = ch.read_wav(msg.wav)
    assert rate == 8000
    assert abs(env["duration"] - len(stored) / rate) <= 0.05, env
    said, _ = ch.read_wav(audio["said"])
    spoken, recorded = ch.active_span(said, 8000), ch.active_span(stored, rate)
    assert abs(recorded - spoken) <= 0.3, f"{recorded:.2f} s of ch.speech stored, {spoken:.2f} s said"
    # it ended on silence: the ch.speech plus SILENCE_STOP seconds after it
    assert len(stored) / rate < 4.0 + spoken + SILENCE_STOP, f"{len(stored) / rate:.2f} s stored"
    same, lag = ch.best_correlation(ch.envelope(said), ch.envelope(stored), 600)
    different = _other(audio, said, stored, 600)
    assert same > ch.SAME, f"the stored message does not match what bob said ({same:.3f} at {lag * 10} ms)"
    assert different < ch.OTHER, f"another sentence matches as well ({different:.3f})"
    assert _retained(vmpbx) == {"extension": "201", "new": 1, "old": 0}
    assert not list(box.dir.glob(".rec-*")), "the temporary recording was left behind"


def test_hanging_up_during_the_recording_keeps_the_message(vmpbx, box, audio, tmp_path):
    source = _message_of(audio["said"], 1.5, tmp_path / "bob.wav")
    with ExitStack() as stack:
        bob = _phone(stack, vmpbx, BOB, source)
        bob.dial("201")
        began = _recording_started(box)
        time.sleep(3.0)
        hung_up = time.monotonic()
        bob.hangup()
        wait(lambda: box.messages("INBOX"), timeout=10, what="the message in INBOX")
    [msg] = box.messages("INBOX")
    expected = hung_up - began - 0.25  # the recording starts after the beep
    assert abs(msg.seconds - expected) <= 0.3, f"{msg.seconds:.2f} s kept, {expected:.2f} s recorded"
    assert abs(len(ch.read_wav(msg.wav)[0]) / 8000 - msg.seconds) <= 0.05
    assert _retained(vmpbx)["new"] == 1


def test_a_too_short_message_is_discarded(vmpbx, box, audio):
    before = _retained(vmpbx)
    with ExitStack() as stack:
        bob = _phone(stack, vmpbx, BOB, audio["said"])
        bob.dial("201")
        _recording_started(box)
        time.sleep(0.5)
        bob.hangup()
        wait(lambda: not list(box.dir.glob(".rec-*")), timeout=10, what="the short recording removed")
    assert box.messages("INBOX") == []
    assert _retained(vmpbx) == before


def test_a_full_mailbox_says_so(vmpbx, box, audio, tmp_path):
    vmpbx.reload(_cfg(limits={"max_messages": 1}))
    pending = box.begin("203", "Carol")
    shutil.copy(audio["said"], pending.wav)
    assert box.deposit(pending) is not None
    (box.dir / "greet-unavailable.wav").unlink()  # the generated greeting is not played to a full box anyway
    with ExitStack() as stack:
        bob = _phone(stack, vmpbx, BOB, audio["quiet"])
        bob.dial("201")
        bob.wait_for("CALL_ESTABLISHED")
        bob.wait_for("CALL_CLOSED", timeout=20)
        heard, _ = ch.read_wav(bob.heard())
    prompt, _ = ch.read_wav(PromptLibrary(vmpbx.ctx.data_dir).prompt_path("vm-mailbox-full", "en"))
    other, _ = ch.read_wav(PromptLibrary(vmpbx.ctx.data_dir).prompt_path("vm-message-saved", "en"))
    same, _ = ch.best_correlation(ch.envelope(prompt), ch.envelope(heard), 300)
    different, _ = ch.best_correlation(ch.envelope(other), ch.envelope(heard), 300)
    assert same > ch.SAME, f"bob did not hear 'mailbox full' ({same:.3f})"
    assert different < ch.OTHER, f"another prompt matches as well ({different:.3f})"
    assert len(box.messages("INBOX")) == 1 and not list(box.dir.glob(".rec-*"))


def test_the_generated_greeting_names_the_extension(vmpbx, box, audio):
    (box.dir / "greet-unavailable.wav").unlink()
    heard = _greeting_heard(vmpbx, box, audio, 1.5)
    lib = PromptLibrary(vmpbx.ctx.data_dir)
    leave, _ = ch.read_wav(lib.prompt_path("vm-leave-message", "en"))
    full, _ = ch.read_wav(lib.prompt_path("vm-mailbox-full", "en"))
    same, _ = ch.best_correlation(ch.envelope(leave), ch.envelope(heard), 800)
    different, _ = ch.best_correlation(ch.envelope(full), ch.envelope(heard), 800)
    assert same > ch.SAME and different < ch.OTHER, (same, different)


def test_zero_keeps_the_message_and_passes_the_caller_to_the_operator(vmpbx, box, audio, tmp_path):
    vmpbx.reload(_cfg(operator="203"))
    with ExitStack() as stack:
        carol = _phone(stack, vmpbx, CAROL, audio["quiet"])
        bob = _phone(stack, vmpbx, BOB, _message_of(audio["said"], 1.5, tmp_path / "bob.wav"))
        bob.dial("201")
        began = _recording_started(box)
        time.sleep(3.0)
        pressed = time.monotonic()
        bob.send_dtmf("0")
        carol.answer(timeout=15)
        carol.wait_for("CALL_ESTABLISHED")
        wait(lambda: box.messages("INBOX"), timeout=10, what="the message in INBOX")
        assert bob.call_state() != "CALL_CLOSED", "bob's call should go on with the operator"
        bob.hangup()
        carol.wait_for("CALL_CLOSED")
    [msg] = box.messages("INBOX")
    assert abs(msg.seconds - (pressed - began - 0.25)) <= 0.3, msg.envelope


# -- call routing: do not disturb, no answer, voicemail off ---------------------------------------------
def test_do_not_disturb_reaches_the_box_with_the_busy_greeting(vmpbx, box, audio):
    vmpbx.reload(_cfg({"201": {"dnd": True}}))
    shutil.copy(audio["other"], box.dir / "greet-busy.wav")
    heard = _greeting_heard(vmpbx, box, audio, 2.5)
    wait(lambda: box.messages("INBOX"), timeout=10, what="the message in INBOX")
    busy, _ = ch.read_wav(audio["other"])
    same, _ = ch.best_correlation(ch.envelope(busy), ch.envelope(heard), 400)
    assert same > ch.SAME, f"bob did not hear the busy greeting ({same:.3f})"
    assert _other(audio | {"other": audio["said"]}, busy, heard, 400) < ch.OTHER


def test_no_answer_rings_the_phone_then_reaches_the_box(vmpbx, box, audio):
    vmpbx.reload(_cfg({"201": {"no_answer_timeout": 5}}))
    with ExitStack() as stack:
        alice = _phone(stack, vmpbx, ALICE, audio["quiet"])
        bob = _phone(stack, vmpbx, BOB, audio["said"])
        bob.dial("201")
        alice.wait_for("CALL_INCOMING", timeout=10)
        rang = time.monotonic()
        assert _recording_started(box, timeout=30) - rang >= 4.5
        time.sleep(2.0)
        bob.hangup()
        wait(lambda: box.messages("INBOX"), timeout=10, what="the message in INBOX")


def test_a_user_without_pin_gets_messages(vmpbx, box, audio, tmp_path):
    """carol has no PIN and no setting: voicemail is on by default, bob's call lands in her box."""
    carol = Mailbox(box.dir.parent, "203", vmpbx.cfg.pbx.voicemail.limits)
    for path in carol.dir.rglob("*"):
        if path.is_file():
            path.unlink()
    with ExitStack() as stack:
        bob = _phone(stack, vmpbx, BOB, _message_of(audio["said"], 8.0, tmp_path / "bob.wav"))
        bob.dial("203")
        _recording_started(carol, timeout=30)
        time.sleep(2.0)
        bob.hangup()
        wait(lambda: carol.messages("INBOX"), timeout=10, what="the message in carol's box")


def test_voicemail_off_leaves_the_call_unanswered(vmpbx, box, audio):
    vmpbx.reload(_cfg({"201": {"voicemail": False}}))
    with ExitStack() as stack:
        bob = _phone(stack, vmpbx, BOB, audio["quiet"])
        bob.dial("201")
        bob.wait_for("CALL_CLOSED", timeout=15)
        assert not any(e.get("type") == "CALL_ESTABLISHED" for e in bob.events)
    assert box.messages("INBOX") == [] and not list(box.dir.glob(".rec-*"))


# -- the owner's menu -----------------------------------------------------------------------------------
def _owner_listens(vmpbx, box, audio, key: str) -> tuple[list[int], list[int]]:
    pending = box.begin("202", "Bob Durand")
    shutil.copy(audio["said"], pending.wav)
    box.deposit(pending)
    assert _retained(vmpbx) == {"extension": "201", "new": 1, "old": 0}
    message, _ = ch.read_wav(box.messages("INBOX")[0].wav)
    with ExitStack() as stack:
        alice = _phone(stack, vmpbx, ALICE, audio["quiet"])
        alice.dial("*97")
        alice.wait_for("CALL_ESTABLISHED")
        time.sleep(1.0)
        alice.send_dtmf(PIN + "#")
        wait(lambda: _retained(vmpbx)["new"] == 0, timeout=40, what="the message heard (INBOX -> Old)")
        alice.send_dtmf(key)
        alice.wait_for("CALL_CLOSED", timeout=30)
        heard, _ = ch.read_wav(alice.heard())
    return message, heard


def test_owner_hears_the_message_and_saves_it(vmpbx, box, audio):
    message, heard = _owner_listens(vmpbx, box, audio, "9")
    same, lag = ch.best_correlation(ch.envelope(message), ch.envelope(heard), 2500)
    different = _other(audio, message, heard, 2500)
    assert same > ch.SAME, f"alice did not hear the message ({same:.3f} at {lag * 10} ms)"
    assert different < ch.OTHER, f"another sentence matches as well ({different:.3f})"
    assert [len(box.messages(f)) for f in ("INBOX", "Old", "Saved")] == [0, 0, 1]
    assert _retained(vmpbx) == {"extension": "201", "new": 0, "old": 1}


def test_owner_deletes_the_message(vmpbx, box, audio):
    _owner_listens(vmpbx, box, audio, "7")
    assert [len(box.messages(f)) for f in ("INBOX", "Old", "Saved")] == [0, 0, 0]
    assert _retained(vmpbx) == {"extension": "201", "new": 0, "old": 0}


def test_three_wrong_pins_hang_up_and_are_counted(vmpbx, box, audio, caplog):
    caplog.set_level(logging.WARNING, "officebox.pbx.voicemail")
    guard = vmpbx.svc.core.guard
    failures = vmpbx.sync(lambda: len(guard.sources["127.0.0.1"].failures) if "127.0.0.1" in guard.sources else 0)
    with ExitStack() as stack:
        alice = _phone(stack, vmpbx, ALICE, audio["quiet"])
        alice.dial("*97")
        alice.wait_for("CALL_ESTABLISHED")
        for _ in range(3):
            time.sleep(1.0)
            alice.send_dtmf("0000#")
        alice.wait_for("CALL_CLOSED", timeout=30)
    wrong = [r for r in caplog.records if "wrong PIN" in r.getMessage()]
    assert len(wrong) == 3, [r.getMessage() for r in wrong]
    assert PIN not in caplog.text and "0000" not in caplog.text
    assert vmpbx.sync(lambda: len(guard.sources["127.0.0.1"].failures)) == failures + 3


def test_any_box_asks_the_number_and_the_pin(vmpbx, box, audio):
    """bob dials *98, enters 201# and alice's PIN: he hears her box (the message count prompt)."""
    pending = box.begin("203", "Carol")
    shutil.copy(audio["said"], pending.wav)
    box.deposit(pending)
    with ExitStack() as stack:
        bob = _phone(stack, vmpbx, BOB, audio["quiet"])
        bob.dial("*98")
        bob.wait_for("CALL_ESTABLISHED")
        time.sleep(1.0)
        bob.send_dtmf("201#")
        time.sleep(1.0)
        bob.send_dtmf(PIN + "#")
        wait(lambda: _retained(vmpbx)["new"] == 0, timeout=40, what="the message heard (INBOX -> Old)")
        bob.hangup()
    assert [len(box.messages(f)) for f in ("INBOX", "Old", "Saved")] == [0, 1, 0]


def test_owner_records_a_greeting_that_callers_then_hear(vmpbx, box, audio, tmp_path):
    """*97, PIN, 0 (options), 1 (unavailable greeting): alice speaks, # ends it; bob calling hears it."""
    said, _ = ch.read_wav(audio["said"])
    talk = ch.write_wav(tmp_path / "talk.wav", (said + [0] * 4000) * 6)  # speech whenever the beep comes
    (box.dir / "greet-unavailable.wav").unlink()
    with ExitStack() as stack:
        alice = _phone(stack, vmpbx, ALICE, talk)
        alice.dial("*97")
        alice.wait_for("CALL_ESTABLISHED")
        time.sleep(1.0)
        alice.send_dtmf(PIN + "#")
        time.sleep(2.0)
        alice.send_dtmf("0")  # during "no messages" or the offer after it: the options
        time.sleep(1.0)
        alice.send_dtmf("1")
        wait(lambda: list(box.dir.glob(".greet-*.wav")), timeout=40, what="the greeting recording")
        began = time.monotonic()
        time.sleep(4.0)
        ended = time.monotonic()
        alice.send_dtmf("#")
        wait(lambda: box.greeting("unavailable"), timeout=10, what="the greeting saved")
        alice.hangup()
    greeting, rate = ch.read_wav(box.greeting("unavailable"))
    expected = ended - began  # the engine makes the file as it starts recording; # takes a packet or two more
    assert abs(len(greeting) / rate - expected) <= 0.4, f"{len(greeting) / rate:.2f} s, {expected:.2f} s spoken"
    assert not list(box.dir.glob(".greet-*"))
    heard = _greeting_heard(vmpbx, box, audio, 1.5)
    same, lag = ch.best_correlation(ch.envelope(greeting), ch.envelope(heard), 300)
    assert same > ch.SAME, f"bob did not hear alice's greeting ({same:.3f} at {lag * 10} ms)"
