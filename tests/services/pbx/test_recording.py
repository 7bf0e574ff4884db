"""Call recording with real baresip phones: alice (201) sends a 600 Hz tone, bob (202) a 1000 Hz
tone; the box records the bridged call into a stereo WAV. Each channel is measured (Goertzel power at
both frequencies): the caller's channel holds 600 Hz and not 1000 Hz, the callee's the reverse."""
from __future__ import annotations

import asyncio
import math
import wave
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.pbx import apps
from services.pbx.media import dsp
from services.pbx.prompts import PromptLibrary

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .pbxrunner import PbxRunner, config
from .rawphone import answer, in_dialog, next_request, sdp
from .test_channel import ESPEAK, SAME, AudioBaresip, best_correlation, envelope, read_wav, write_wav
from .test_conformance_calls import _answered_call, _hang_up, _registered
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
CALLER_HZ, CALLEE_HZ, NOTICE_HZ = 600, 1000, 1400


def _cfg(**recording):
    return config([ALICE, BOB], digest_algorithms=["MD5"], codecs=["G722", "PCMU", "PCMA"],
                  recording={"notice": "none", **recording})


@pytest.fixture
def recpbx(tmp_path):
    with PbxRunner(tmp_path / "pbx", _cfg(extensions=["201"])) as runner:
        yield runner


def tone(path: Path, hz: int, seconds: float = 30) -> Path:
    return write_wav(path, [int(6000 * math.sin(2 * math.pi * hz * n / 8000)) for n in range(int(seconds * 8000))])


def power(samples: list[int], hz: float, rate: int) -> float:
    """Goertzel: the power of `hz` in `samples`, normalised by their length."""
    k = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - k * s1 * s2) / max(1, len(samples)) ** 2


def channels(path: Path) -> tuple[list[int], list[int], int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 2 and w.getsampwidth() == 2
        rate, data = w.getframerate(), w.readframes(w.getnframes())
    samples = memoryview(data).cast("h").tolist()
    return samples[0::2], samples[1::2], rate


def phones(stack, pbx, tmp_path, codec):
    alice = stack.enter_context(AudioBaresip("alice", tone(tmp_path / "a.wav", CALLER_HZ), user="201",
                                             password=ALICE["sip_secret"], registrar=pbx.registrar, codecs=(codec,)))
    bob = stack.enter_context(AudioBaresip("bob", tone(tmp_path / "b.wav", CALLEE_HZ), user="202",
                                           password=BOB["sip_secret"], registrar=pbx.registrar, codecs=(codec,)))
    alice.register()
    bob.register()
    alice.dial("202")
    bob.answer()
    alice.wait_for("CALL_ESTABLISHED")
    return alice, bob


def recorded(pbx) -> tuple[dict, Path]:
    rows = wait(lambda: [r for r in pbx.svc.cdr_query() if r["recording"]], what="a call record with a recording")
    return rows[0], pbx.ctx.state_dir("pbx") / "recordings" / rows[0]["recording"]


def assert_both_parties(left: list[int], right: list[int], rate: int) -> None:
    skip = rate // 2  # the first half second: the phones' audio starting
    left, right = left[skip:], right[skip:]
    l_caller, l_callee = power(left, CALLER_HZ, rate), power(left, CALLEE_HZ, rate)
    r_caller, r_callee = power(right, CALLER_HZ, rate), power(right, CALLEE_HZ, rate)
    assert l_caller > 20 * l_callee, f"left (caller): {l_caller:.0f} at {CALLER_HZ} Hz, {l_callee:.0f} at {CALLEE_HZ}"
    assert r_callee > 20 * r_caller, f"right (callee): {r_callee:.0f} at {CALLEE_HZ} Hz, {r_caller:.0f} at {CALLER_HZ}"


@pytest.mark.parametrize("codec", ["pcmu", "g722"])
def test_an_extension_s_calls_are_recorded_with_both_parties(recpbx, tmp_path, codec):
    if codec == "g722" and "G722" not in dsp.codecs():
        pytest.skip("libspandsp is not installed")
    with ExitStack() as stack:
        alice, bob = phones(stack, recpbx, tmp_path, codec)
        alice.wait_rtp(tx=150, rx=150)  # 3 s of talk
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
    row, path = recorded(recpbx)
    left, right, rate = channels(path)
    assert rate == (16000 if codec == "g722" else 8000)
    assert 2.5 <= len(left) / rate <= 8, f"{len(left) / rate:.2f} s recorded of a 3 s call"
    assert_both_parties(left, right, rate)
    # what the web admin gets (through the service's methods), the same bytes; staff only their own calls
    assert recpbx.svc.recording_row(row["recording"], "202")["call_id"] == row["call_id"]
    assert recpbx.svc.recording_row(row["recording"], "203") is None
    assert recpbx.svc.recording_chunk(row["recording"], 0, 100, "203") is None
    chunk = recpbx.svc.recording_chunk(row["recording"], 0, 1 << 20, "201")
    assert chunk["total"] == path.stat().st_size


def test_the_feature_code_records_on_demand_with_a_notice_and_passes_the_keys(recpbx, tmp_path):
    recpbx.reload(_cfg(notice="tone"))
    with ExitStack() as stack:
        alice, bob = phones(stack, recpbx, tmp_path, "pcmu")
        alice.wait_rtp(tx=50, rx=50)
        assert not recpbx.sync(lambda: [c.record.recording for c in recpbx.svc.core.calls.values()])[0]
        alice.send_dtmf("*1")
        wait(lambda: "*1" in bob.dtmf_received, what="bob hearing the keys alice pressed")
        wait(lambda: recpbx.sync(lambda: [c.record.recording for c in recpbx.svc.core.calls.values()])[0],
             what="the recording to start")
        start = alice.rtp_stats()["tx"]
        alice.wait_rtp(tx=start + 150)
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
        heard, rate = _mono(bob.heard())
    _row, path = recorded(recpbx)
    left, right, rate = channels(path)
    assert 2.5 <= len(left) / rate <= 8
    assert_both_parties(left, right, rate)
    beeps = [power(heard[i:i + 800], NOTICE_HZ, 8000) for i in range(0, len(heard) - 800, 800)]
    voice = power(heard, CALLER_HZ, 8000)  # alice's tone, as bob hears it: the scale
    assert max(beeps) > 0.1 * voice, f"bob heard no recording notice ({max(beeps):.0f} against {voice:.0f})"


def _mono(path: Path) -> tuple[list[int], int]:
    with wave.open(str(path), "rb") as w:
        data, rate, ch = w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()
    return memoryview(data).cast("h").tolist()[::ch], rate


def test_a_call_an_application_puts_through_is_recorded(tmp_path):
    """An attendant-like application answers alice and bridges her to bob (202, recorded)."""
    async def put_through(channel):
        await channel.answer()
        await channel.bridge("202")

    apps.register("app:put-through", put_through)
    cfg = config([ALICE, BOB], digest_algorithms=["MD5"], codecs=["PCMU"],
                 application_numbers={"*77": "app:put-through"},
                 recording={"notice": "none", "extensions": ["202"]})
    try:
        with PbxRunner(tmp_path / "pbx", cfg) as pbx, ExitStack() as stack:
            alice = stack.enter_context(AudioBaresip("alice", tone(tmp_path / "a.wav", CALLER_HZ), user="201",
                                                     password=ALICE["sip_secret"], registrar=pbx.registrar))
            bob = stack.enter_context(AudioBaresip("bob", tone(tmp_path / "b.wav", CALLEE_HZ), user="202",
                                                   password=BOB["sip_secret"], registrar=pbx.registrar))
            alice.register()
            bob.register()
            alice.dial("*77")
            bob.answer()
            start = bob.rtp_stats().get("tx", 0)
            bob.wait_rtp(tx=start + 150)
            alice.hangup()
            bob.wait_for("CALL_CLOSED")
            _row, path = recorded(pbx)
            left, right, rate = channels(path)
    finally:
        apps.unregister("app:put-through")
    assert len(left) / rate >= 2.5
    assert_both_parties(left, right, rate)


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")
def test_the_spoken_notice_reaches_both_parties(recpbx, tmp_path):
    recpbx.reload(_cfg(extensions=["201"], notice="prompt"))
    notice = PromptLibrary(recpbx.ctx.data_dir, "en").prompt_path("rec-notice", "en", 8000)  # made before the call
    quiet = write_wav(tmp_path / "quiet.wav", [0] * 8000 * 30)
    heard = {}
    with ExitStack() as stack:
        alice = stack.enter_context(AudioBaresip("alice", quiet, user="201", password=ALICE["sip_secret"],
                                                 registrar=recpbx.registrar, codecs=("pcmu",)))
        bob = stack.enter_context(AudioBaresip("bob", quiet, user="202", password=BOB["sip_secret"],
                                               registrar=recpbx.registrar, codecs=("pcmu",)))
        alice.register()
        bob.register()
        alice.dial("202")
        bob.answer()
        alice.wait_for("CALL_ESTABLISHED")
        alice.wait_rtp(tx=200, rx=200)  # 4 s: the notice lasts about 2
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
        for ua in (alice, bob):
            heard[ua.name] = _mono(ua.heard())[0]
    src = envelope(read_wav(notice)[0])
    for name, samples in heard.items():
        same, lag = best_correlation(src, envelope(samples), 400)
        assert same > SAME, f"{name} did not hear the notice ({same:.3f} at {lag * 10} ms)"


def test_the_feature_code_again_pauses_the_recording(recpbx, tmp_path):
    recpbx.reload(_cfg())
    with ExitStack() as stack:
        alice, bob = phones(stack, recpbx, tmp_path, "pcmu")
        alice.wait_rtp(tx=25, rx=25)
        bob.send_dtmf("*1")  # the callee's phone may too
        wait(lambda: recpbx.sync(lambda: [c.recording.state for c in recpbx.svc.core.calls.values()])[0] == "on",
             what="the recording to start")
        alice.wait_rtp(tx=alice.rtp_stats()["tx"] + 100)
        bob.send_dtmf("*1")
        wait(lambda: recpbx.sync(lambda: [c.recording.state for c in recpbx.svc.core.calls.values()])[0] == "paused",
             what="the recording to pause")
        alice.wait_rtp(tx=alice.rtp_stats()["tx"] + 100)
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
    _row, path = recorded(recpbx)
    left, right, rate = channels(path)
    assert len(left) / rate >= 3.5, f"{len(left) / rate:.2f} s: the paused time is kept as silence"
    assert_both_parties(left[:rate * 2], right[:rate * 2], rate)
    end = slice(-rate, None)  # the last second: paused
    assert power(left[end], CALLER_HZ, rate) < 0.01 * power(left[:rate * 2], CALLER_HZ, rate)
    assert power(right[end], CALLEE_HZ, rate) < 0.01 * power(right[:rate * 2], CALLEE_HZ, rate)


def test_the_feature_code_as_sip_info_records_and_the_info_is_passed_on(recpbx):
    """Phones set to send DTMF as SIP INFO (application/dtmf-relay): scripted phones on the wire."""
    recpbx.reload(_cfg())

    async def main():
        async with _registered(recpbx, "201", "202") as (alice, bob):
            req, _incoming, ok = await _answered_call(alice, bob, alice.request(
                "INVITE", "sip:202@127.0.0.1", "201", body=sdp(4000)))
            for key in "*1":
                alice.send(in_dialog(alice, "INFO", ok, req.call_id, f"Signal={key}\r\nDuration=160\r\n".encode(),
                                     "application/dtmf-relay"))
                passed = await next_request(bob, "INFO")
                assert passed.body.decode().startswith(f"Signal={key}")
                answer(bob, passed, 200, "bobtag")
                assert (await alice.final()).status == 200
            calls = recpbx.svc.core.calls
            await until(lambda: [c.record.recording for c in list(calls.values())][0], what="a recording")
            await _hang_up(alice, bob, ok, req)
    run(main())
    row, path = recorded(recpbx)
    assert path.exists() and row["caller"] == "201"


async def until(predicate, what: str, timeout: float = 5.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_call_transferred_to_a_recorded_extension_is_recorded_from_then_on(recpbx, tmp_path):
    """carol (203) calls bob (202, not recorded), who puts her through to alice (201, recorded)."""
    recpbx.reload(config([ALICE, BOB, CAROL], digest_algorithms=["MD5"], codecs=["PCMU"],
                         recording={"notice": "none", "extensions": ["201"]}))
    with ExitStack() as stack:
        carol = stack.enter_context(AudioBaresip("carol", tone(tmp_path / "c.wav", CALLER_HZ), user="203",
                                                 password=CAROL["sip_secret"], registrar=recpbx.registrar))
        alice = stack.enter_context(AudioBaresip("alice", tone(tmp_path / "a.wav", CALLEE_HZ), user="201",
                                                 password=ALICE["sip_secret"], registrar=recpbx.registrar))
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=recpbx.registrar))
        for ua in (carol, alice, bob):
            ua.register()
        carol.dial("202")
        bob.answer()
        carol.wait_for("CALL_ESTABLISHED")
        carol.wait_rtp(tx=25)
        assert not [r for r in recpbx.svc.cdr_query() if r["recording"]]
        bob.transfer("201")
        alice.answer()
        alice.wait_rtp(tx=150, rx=150)
        carol.hangup()
        alice.wait_for("CALL_CLOSED")
    row, path = recorded(recpbx)
    assert (row["caller"], row["callee"]) == ("203", "201")
    left, right, rate = channels(path)
    assert len(left) / rate >= 2.5
    assert_both_parties(left, right, rate)
