"""Conferences with real baresip phones, each sending its own tone (aufile source, a generated WAV) and
recording what it hears (sndfile): in a 3-party and a 5-party meet-me room every phone hears the
others' frequencies and not its own (Goertzel powers on its recording); a G.722 and a G.711 phone hear
each other; three wrong PINs end the call and count for the abuse guard; the mute key takes a phone's
tone out of what the others hear; the feature code joins a held call and a consultation call into a
three-party conference.

Windows: each recording is analysed over the seconds before the first hang-up (the entry tones and
the prompt to the first participant are over by then, the exit tones come after)."""
from __future__ import annotations

import logging
import struct
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.pbx.conference import hash_pin
from services.pbx.media import dsp
from services.pbx.prompts import PromptLibrary

from . import test_channel as ch
from .baresip import have_baresip
from .conftest import ALICE, BOB, CAROL
from .pbxrunner import PbxRunner, config, user
from .test_conference_mixer import spectrum_peaks
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
ERIN = user("erin", "205", "erinsecret12", "Erin Blanc")
FRANK = user("frank", "206", "franksecret1", "Frank Noir")
GRACE = user("grace", "207", "gracesecret1", "Grace Vert")
PEOPLE = [ALICE, BOB, CAROL, ERIN, FRANK]
FREQS = [520.0, 1020.0, 1250.0, 1500.0, 1800.0]  # away from the entry/exit/mute tones (400-900 Hz)
PIN = "2468"
HEARD, OWN = 0.03, 0.01  # relative power: another party's tone is above HEARD, one's own below OWN


def _cfg():
    rooms = [{"number": "800", "name": "main", "alone": "prompt"},
             {"number": "801", "name": "secure", "pin_hash": hash_pin(PIN), "alone": "prompt"},
             {"number": "803", "name": "small", "alone": "prompt", "max_participants": 2}]
    return config([*PEOPLE, GRACE], digest_algorithms=["MD5"], codecs=["PCMU", "PCMA", "G722"],
                  conference_rooms=rooms)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    d = tmp_path_factory.mktemp("tones")
    return ch.tone_files(d, FREQS)


@pytest.fixture(scope="module")
def confpbx(tmp_path_factory):
    data = tmp_path_factory.mktemp("pbx")
    with PbxRunner(data, _cfg()) as runner:
        PromptLibrary(data, "en").ensure()  # once for the module
        yield runner


def _phone(stack, pbx, who: dict, source: Path, codecs=("pcmu",)) -> ch.AudioBaresip:
    ua = stack.enter_context(ch.AudioBaresip(who["login"], source, user=who["extension"],
                                             password=who["sip_secret"], registrar=pbx.registrar, codecs=codecs))
    ua.register()
    return ua


def _participants(pbx, room: str) -> list[dict]:
    return next(r for r in pbx.svc.conference_rooms() if r["name"] == room)["participants"]


def _join(pbx, phones, number: str = "800", room: str = "main") -> None:
    for i, ua in enumerate(phones):
        ua.dial(number)
        ua.wait_for("CALL_ESTABLISHED")
        wait(lambda n=i + 1: len(_participants(pbx, room)) == n, timeout=10, what=f"{i + 1} participants")


def _newest_recording(ua) -> Path:
    """The dump of the phone's last call: baresip names them by the second the call started."""
    return max(ua.dir.glob("dump-*-dec.wav"), key=lambda p: (p.name, p.stat().st_size))


def heard_tones(ua, freqs: list[float], seconds: float = 1.5) -> dict[float, float]:
    """Relative powers of `freqs` in the last `seconds` a phone heard (its dump read as it grows)."""
    raw = _newest_recording(ua).read_bytes()
    start = raw.find(b"data") + 8
    count = (len(raw) - start) // 2
    samples = list(memoryview(raw[start:start + 2 * count]).cast("h"))[-int(seconds * 8000):]
    return spectrum_peaks(samples, 8000, freqs)


def _window(ua, seconds: float = 2.0, before_end: float = 0.3) -> tuple[list[int], int]:
    samples, rate = ch.read_wav(_newest_recording(ua))
    end = len(samples) - int(before_end * rate)
    return samples[max(0, end - int(seconds * rate)):end], rate


def _so_far(ua, seconds: float) -> tuple[list[int], int]:
    """The last `seconds` of what a phone in a call has heard so far (its dump's header is written at the
    end: the samples are read after the data chunk's tag)."""
    raw = _newest_recording(ua).read_bytes()
    start = raw.find(b"data") + 8
    samples = list(struct.unpack(f"<{(len(raw) - start) // 2}h", raw[start:start + (len(raw) - start) // 2 * 2]))
    return samples[-int(seconds * 8000):], 8000


def _hang_up_all(phones) -> list[tuple[list[int], int]]:
    for ua in phones:
        ua.hangup()
    for ua in phones:
        ua.wait_for("CALL_CLOSED")
    return [_window(ua) for ua in phones]


def _assert_hears(heard: list[tuple[list[int], int]], freqs: list[float], silent: set[float] = frozenset()):
    for (samples, rate), own in zip(heard, freqs, strict=True):
        peaks = spectrum_peaks(samples, rate, freqs)
        assert peaks[own] < OWN, f"the {own:.0f} Hz phone hears itself: {peaks}"
        for f in freqs:
            if f != own and f not in silent:
                assert peaks[f] > HEARD, f"the {own:.0f} Hz phone does not hear {f:.0f} Hz: {peaks}"
            elif f in silent:
                assert peaks[f] < OWN, f"the {own:.0f} Hz phone still hears the muted {f:.0f} Hz: {peaks}"


@pytest.mark.parametrize("count", [3, 5])
def test_each_phone_hears_the_others_and_not_itself(confpbx, tones, count):
    with ExitStack() as stack:
        phones = [_phone(stack, confpbx, who, tones[i]) for i, who in enumerate(PEOPLE[:count])]
        _join(confpbx, phones)
        time.sleep(3.5)
        heard = _hang_up_all(phones)
    _assert_hears(heard, FREQS[:count])
    wait(lambda: _participants(confpbx, "main") == [], timeout=5, what="the room to empty")


@pytest.mark.skipif("G722" not in dsp.codecs(), reason="libspandsp (G.722) is not installed")
def test_a_g722_and_a_g711_phone_hear_each_other(confpbx, tones):
    with ExitStack() as stack:
        wide = _phone(stack, confpbx, ALICE, tones[0], codecs=("g722",))
        narrow = _phone(stack, confpbx, BOB, tones[1], codecs=("pcma",))
        _join(confpbx, [wide, narrow])
        assert "G722" in wide.rtp_stats().get("codec", "").upper(), wide.rtp_stats()
        time.sleep(3.0)
        heard = _hang_up_all([wide, narrow])
    _assert_hears(heard, FREQS[:2])


def test_the_mute_key_takes_a_phone_out_of_what_the_others_hear(confpbx, tones):
    with ExitStack() as stack:
        phones = [_phone(stack, confpbx, who, tones[i]) for i, who in enumerate(PEOPLE[:3])]
        _join(confpbx, phones)
        time.sleep(1.0)
        phones[0].send_dtmf("*")
        wait(lambda: [p["muted"] for p in _participants(confpbx, "main")] == [True, False, False], timeout=5,
             what="the first phone muted")
        time.sleep(3.0)
        heard = _hang_up_all(phones)
    _assert_hears(heard, FREQS[:3], silent={FREQS[0]})


def test_three_wrong_pins_end_the_call_and_are_counted(confpbx, tones, caplog):
    caplog.set_level(logging.WARNING, "officebox.pbx.conference")
    guard = confpbx.svc.core.guard
    failures = confpbx.sync(lambda: len(guard.sources["127.0.0.1"].failures) if "127.0.0.1" in guard.sources else 0)
    with ExitStack() as stack:
        ua = _phone(stack, confpbx, ALICE, tones[0])
        ua.dial("801")
        ua.wait_for("CALL_ESTABLISHED")
        for _ in range(3):
            time.sleep(1.0)
            ua.send_dtmf("1111#")
        ua.wait_for("CALL_CLOSED", timeout=40)
        assert _participants(confpbx, "secure") == []
        ok = _phone(stack, confpbx, BOB, tones[1])  # the right PIN lets one in
        ok.dial("801")
        ok.wait_for("CALL_ESTABLISHED")
        time.sleep(1.0)
        ok.send_dtmf(PIN + "#")
        wait(lambda: len(_participants(confpbx, "secure")) == 1, timeout=20, what="the participant with the PIN")
        ok.hangup()
    wrong = [r for r in caplog.records if "wrong PIN" in r.getMessage()]
    assert len(wrong) == 3 and "1111" not in caplog.text
    assert confpbx.sync(lambda: len(guard.sources["127.0.0.1"].failures)) == failures + 3


@pytest.mark.parametrize("hold", [True, False])
def test_the_feature_code_joins_the_callers_calls(confpbx, tones, hold):
    """alice talks to bob, (holds him,) calls carol (the consultation), (holds her,) and dials *3: the
    three are in one conference; alice's two first calls are gone, bob's and carol's go on.
    baresip 1.0's sndfile dump stops recording at a re-INVITE (checked: its dump stays the same size
    after a hold and a resume while RTP keeps arriving), so with `hold` only what alice hears is analysed
    (bob and carol sending proves the box took them off hold) and bob's and carol's receiving is counted."""
    with ExitStack() as stack:
        alice = _phone(stack, confpbx, ALICE, tones[0])
        bob = _phone(stack, confpbx, BOB, tones[1])
        carol = _phone(stack, confpbx, CAROL, tones[2])
        alice.dial("202")
        bob.answer()
        alice.wait_for("CALL_ESTABLISHED")
        if hold:
            alice.hold()
        time.sleep(1.1)  # each call of alice's in a second of its own: baresip names its dumps by the second
        alice.dial("203")
        carol.answer()
        alice.wait_for("CALL_ESTABLISHED")
        if hold:
            alice.hold()
        time.sleep(1.1)
        alice.dial(confpbx.cfg.pbx.feature_codes.conference)
        alice.wait_for("CALL_ESTABLISHED")
        wait(lambda: any(len(r["participants"]) == 3 for r in confpbx.svc.conference_rooms() if r["adhoc"]),
             timeout=15, what="three participants in the ad-hoc room")
        wait(lambda: len([e for e in alice.events if e.get("type") == "CALL_CLOSED"]) == 2, timeout=5,
             what="alice's first two calls to end")
        assert bob.call_state() == "CALL_ESTABLISHED" and carol.call_state() == "CALL_ESTABLISHED"
        received = [ua.rtp_stats()["rx"] for ua in (bob, carol)]
        time.sleep(3.5)
        assert all(ua.rtp_stats()["rx"] >= was + 150 for ua, was in zip((bob, carol), received, strict=True))
        heard = _hang_up_all([alice, bob, carol])
    if hold:
        peaks = spectrum_peaks(*heard[0], FREQS[:3])
        assert peaks[FREQS[0]] < OWN and peaks[FREQS[1]] > HEARD and peaks[FREQS[2]] > HEARD, peaks
    else:
        _assert_hears(heard, FREQS[:3])
    wait(lambda: not [r for r in confpbx.svc.conference_rooms() if r["adhoc"]], timeout=10,
         what="the ad-hoc room to go")


def test_a_phone_transfers_its_caller_into_a_room(confpbx, tones):
    """A phone's own conference: it REFERs its other party to the room's number (a blind transfer):
    that party is in the room, heard by who is there (bob's own dump stops at the re-INVITE that takes
    him off hold, see above: his receiving is counted), and the transferring phone's call ends."""
    with ExitStack() as stack:
        carol = _phone(stack, confpbx, CAROL, tones[2])
        _join(confpbx, [carol])
        alice = _phone(stack, confpbx, ALICE, tones[0])
        bob = _phone(stack, confpbx, BOB, tones[1])
        alice.dial("202")
        bob.answer()
        alice.wait_for("CALL_ESTABLISHED")
        alice.transfer("800")
        wait(lambda: len(_participants(confpbx, "main")) == 2, timeout=15, what="bob in the room")
        alice.wait_for("CALL_CLOSED", timeout=10)
        assert [p["label"] for p in _participants(confpbx, "main")] == ["203", "202"]
        received = bob.rtp_stats()["rx"]
        time.sleep(3.0)
        assert bob.rtp_stats()["rx"] >= received + 120
        _, heard = _hang_up_all([bob, carol])
    peaks = spectrum_peaks(*heard, FREQS[1:3])
    assert peaks[FREQS[1]] > HEARD and peaks[FREQS[2]] < OWN, peaks


def test_the_only_participant_hears_music_and_the_room_tones_a_newcomer(confpbx, tones):
    rooms = [*_cfg().pbx.model_dump()["conference_rooms"], {"number": "802", "name": "music", "alone": "music"}]
    confpbx.reload(config([*PEOPLE, GRACE], digest_algorithms=["MD5"], codecs=["PCMU", "PCMA", "G722"],
                          lab_sip_port=confpbx.cfg.pbx.lab_sip_port, conference_rooms=rooms))
    quiet = ch.write_wav(tones[0].parent / "quiet.wav", [0] * 8000 * 60)
    with ExitStack() as stack:
        first = _phone(stack, confpbx, ALICE, quiet)
        _join(confpbx, [first], "802", "music")
        time.sleep(6.0)  # the built-in track is made on first use (sox), then plays
        alone, rate = _so_far(first, 2.0)
        assert ch.envelope(alone) and max(ch.envelope(alone)) > 300, "the only participant hears no music"
        second = _phone(stack, confpbx, BOB, quiet)
        second.dial("802")
        second.wait_for("CALL_ESTABLISHED")
        time.sleep(2.0)
        heard, rate = _so_far(first, 2.0)
        windows = [heard[i:i + rate // 5] for i in range(0, len(heard) - rate // 5, rate // 10)]
        assert any(min(spectrum_peaks(w, rate, [660.0, 880.0]).values()) > 0.1 for w in windows), \
            "no entry tone heard by the first participant"
        _hang_up_all([first, second])


def test_the_feature_code_without_another_call_and_an_uninvited_adhoc_room_are_refused(confpbx, tones):
    with ExitStack() as stack:
        alice = _phone(stack, confpbx, ALICE, tones[0])
        alice.dial(confpbx.cfg.pbx.feature_codes.conference)
        closed = alice.wait_for("CALL_CLOSED", timeout=10)
        assert "480" in (closed.get("param") or ""), closed
        alice.dial("conference:3way-1-abc")  # an ad-hoc room's destination, dialled by someone not invited
        closed = alice.wait_for("CALL_CLOSED", timeout=10)
        assert "480" in (closed.get("param") or "") or "404" in (closed.get("param") or ""), closed
        assert not [e for e in alice.events if e.get("type") == "CALL_ESTABLISHED"]


def test_a_full_room_says_so_and_hangs_up(confpbx, tones):
    with ExitStack() as stack:
        phones = [_phone(stack, confpbx, who, tones[i]) for i, who in enumerate(PEOPLE[:3])]
        _join(confpbx, phones[:2], "803", "small")
        phones[2].dial("803")
        phones[2].wait_for("CALL_ESTABLISHED")
        phones[2].wait_for("CALL_CLOSED", timeout=15)
        assert [p["label"] for p in _participants(confpbx, "small")] == ["201", "202"]
        _hang_up_all(phones[:2])
