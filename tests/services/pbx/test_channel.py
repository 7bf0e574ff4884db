"""The channel API (endpoint.MediaEndpoint) against real baresip phones: what an application plays is
what the phone hears, what the phone says (espeak-ng speech) is what the application records, keys as
RFC 4733 events and as in-band tones are collected, hold reaches the application as events, and a
caller hanging up during play / record / collect raises ChannelGone with the partial recording kept.

Audio is compared by the cross-correlation of 10 ms RMS envelopes (robust to codec phase changes
and to the unknown start offset). Thresholds: through G.711 / G.722 the same speech correlates above
0.97 (measured 0.99+), while two different espeak-ng sentences of the same voice correlate below 0.5
(each test checks that negative control too), so 0.9 separates "the same audio" from "other speech".
"""
from __future__ import annotations

import asyncio
import math
import shutil
import struct
import subprocess
import threading
import time
import wave
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.pbx import apps
from services.pbx.endpoint import ChannelGone, Tone
from services.pbx.media import dsp

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, DAVE
from .pbxrunner import PbxRunner, config
from .test_trunks import wait

SAME = 0.9  # envelope correlation above which two recordings are the same speech (see the docstring)
OTHER = 0.6  # a different sentence must stay below this, or the comparison proves nothing

ESPEAK = shutil.which("espeak-ng")


class AudioBaresip(Baresip):
    """`source`: an 8 kHz mono WAV baresip sends as its audio (silence once it ends); what it hears is
    written by sndfile to <dir>/dump-*-dec.wav (see heard())."""

    def __init__(self, name: str, source: Path, **kw) -> None:
        super().__init__(name, **kw)
        self.source = source

    def _config(self) -> str:
        lines = []
        for line in super()._config().splitlines():
            if line.startswith("audio_source"):
                line = f"audio_source aufile,{self.source}"
            elif line.startswith("ausrc_srate"):
                line = "ausrc_srate 8000"
            elif line.startswith("ausrc_channels"):
                line = "ausrc_channels 1\nauplay_srate 8000\nauplay_channels 1"
            elif line == "module ausine.so":
                line = "module aufile.so\nmodule sndfile.so"
            lines.append(line)
        lines.append(f"snd_path {self.dir}")
        return "\n".join(lines) + "\n"

    def heard(self) -> Path:
        found = sorted(self.dir.glob("dump-*-dec.wav"))
        if not found:
            raise AssertionError(f"baresip wrote no recording: {sorted(p.name for p in self.dir.iterdir())}")
        return found[-1]


def read_wav(path: Path) -> tuple[list[int], int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, "16-bit PCM expected"
        data = w.readframes(w.getnframes())
        channels, rate = w.getnchannels(), w.getframerate()
    samples = list(struct.unpack(f"<{len(data) // 2}h", data))
    return samples[::channels], rate


def write_wav(path: Path, samples: list[int], rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def tone_files(directory: Path, freqs: list[float], seconds: int = 60) -> list[Path]:
    """One WAV per frequency (a phone that sends its own tone: what each hears tells who it hears)."""
    return [write_wav(directory / f"{int(f)}.wav", [int(6000 * math.sin(2 * math.pi * f * n / 8000))
                                                    for n in range(8000 * seconds)]) for f in freqs]


def speech(path: Path, text: str, pad_seconds: float = 0.0) -> Path:
    """`text` spoken by espeak-ng, as 8 kHz mono 16-bit PCM, followed by `pad_seconds` of silence."""
    raw = path.with_suffix(".22k.wav")
    subprocess.run([ESPEAK, "-v", "en", "-s", "150", "-w", str(raw), text], check=True, timeout=30)
    samples, rate = read_wav(raw)
    return write_wav(path, resample(samples, rate, 8000) + [0] * int(pad_seconds * 8000))


def resample(samples: list[int], rate: int, to: int) -> list[int]:
    """Linear interpolation after a moving-average low-pass (enough for correlating speech)."""
    if rate == to:
        return list(samples)
    width = max(1, round(rate / to))
    smooth = [sum(samples[max(0, i - width + 1):i + 1]) // width for i in range(len(samples))]
    n = int(len(samples) * to / rate)
    out = []
    for i in range(n):
        x = i * rate / to
        j = int(x)
        frac = x - j
        a = smooth[j]
        b = smooth[j + 1] if j + 1 < len(smooth) else a
        out.append(int(a + (b - a) * frac))
    return out


def envelope(samples: list[int], window: int = 80) -> list[float]:
    """RMS per `window` samples (10 ms at 8 kHz)."""
    return [math.sqrt(sum(x * x for x in samples[i:i + window]) / window)
            for i in range(0, len(samples) - window + 1, window)]


def best_correlation(ref: list[float], sig: list[float], max_lag: int) -> tuple[float, int]:
    """The highest normalised cross-correlation of `ref` against `sig` shifted by 0..max_lag windows."""
    def norm(v):
        m = sum(v) / len(v)
        d = [x - m for x in v]
        s = math.sqrt(sum(x * x for x in d)) or 1.0
        return [x / s for x in d]
    r = norm(ref)
    best = (-1.0, 0)
    for lag in range(max_lag + 1):
        seg = sig[lag:lag + len(r)]
        if len(seg) < len(r):
            break
        c = sum(a * b for a, b in zip(r, norm(seg), strict=True))
        best = max(best, (c, lag))
    return best


def active_span(samples: list[int], rate: int, threshold: float = 300.0) -> float:
    """Seconds from the first to the last 10 ms window louder than `threshold` RMS."""
    env = envelope(samples, rate // 100)
    loud = [i for i, v in enumerate(env) if v > threshold]
    return (loud[-1] - loud[0] + 1) / 100 if loud else 0.0


# -- fixtures: a PBX whose *50 runs whatever script the test sets --------------------------------------
class Script:
    """The application behind *50: `run(channel)` set by the test; its result or exception is kept."""

    def __init__(self) -> None:
        self.run = None
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.marks: dict[str, float] = {}

    async def __call__(self, channel) -> None:
        try:
            self.result = await self.run(channel)
        except BaseException as exc:  # noqa: BLE001 (the test looks at it)
            self.error = exc
            if not isinstance(exc, ChannelGone):
                raise
        finally:
            self.done.set()

    def outcome(self, timeout: float = 30.0):
        assert self.done.wait(timeout), "the application did not finish"
        return self.result


@pytest.fixture
def script():
    s = Script()
    apps.register("app:script", s)
    yield s
    apps.unregister("app:script")


@pytest.fixture
def chpbx(tmp_path, script):
    cfg = config([ALICE, BOB, CAROL, DAVE], application_numbers={"*50": "app:script"},
                 digest_algorithms=["MD5"], codecs=["PCMU", "PCMA", "G722"])
    with PbxRunner(tmp_path / "pbx", cfg) as runner:
        yield runner


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")


def _phone(stack, pbx, source: Path | None, **kw):
    cls = AudioBaresip if source is not None else Baresip
    args = (source,) if source is not None else ()
    ua = stack.enter_context(cls("alice", *args, user="201", password=ALICE["sip_secret"],
                                 registrar=pbx.registrar, **kw))
    ua.register()
    ua.dial("*50")
    ua.wait_for("CALL_ESTABLISHED")
    return ua


def _at_rate(samples: list[int], rate: int) -> list[int]:
    return resample(samples, rate, 8000) if rate != 8000 else samples


# -- play ----------------------------------------------------------------------------------------------
@needs_espeak
@pytest.mark.parametrize("codec", ["pcmu", "pcma", "g722"])
def test_what_the_application_plays_is_what_the_phone_hears(chpbx, script, tmp_path, codec):
    if codec == "g722" and "G722" not in dsp.codecs():
        pytest.skip("libspandsp is not installed")
    prompt = speech(tmp_path / "prompt.wav", "Please leave your message after the tone. Press one for sales.")
    other = speech(tmp_path / "other.wav", "The weather today is sunny with a light breeze from the west.")
    quiet = write_wav(tmp_path / "quiet.wav", [0] * 8000 * 20)

    async def run(ch):
        await ch.answer()
        key = await ch.play(prompt, interruptible=False)
        await ch.wait_gone(1.0)  # the call ends when the application returns: let the phone hear the end
        return key
    script.run = run
    with ExitStack() as stack:
        ua = _phone(stack, chpbx, quiet, codecs=(codec,))
        assert script.outcome() is None  # played to its end, no key
        ua.wait_for("CALL_CLOSED")
        heard, rate = read_wav(ua.heard())
    heard = _at_rate(heard, rate)
    src, _ = read_wav(prompt)
    assert len(heard) > len(src), f"baresip heard {len(heard) / 8000:.2f} s of a {len(src) / 8000:.2f} s prompt"
    same, lag = best_correlation(envelope(src), envelope(heard), 300)
    different, _ = best_correlation(envelope(read_wav(other)[0])[:len(envelope(src))], envelope(heard), 300)
    assert same > SAME, f"what baresip heard does not match the prompt ({same:.3f} at {lag * 10} ms)"
    assert different < OTHER, f"another sentence matches as well ({different:.3f}): the check proves nothing"


# -- record --------------------------------------------------------------------------------------------
@needs_espeak
@pytest.mark.parametrize("codec", ["pcmu", "g722"])
def test_what_the_phone_says_is_recorded_with_its_duration(chpbx, script, tmp_path, codec):
    """Also a talk-off check: the speech makes the in-band detector report no key."""
    if codec == "g722" and "G722" not in dsp.codecs():
        pytest.skip("libspandsp is not installed")
    said = speech(tmp_path / "said.wav", "Hello, this is Bob, please call me back on extension two hundred.", 10)
    other = speech(tmp_path / "other.wav", "The weather today is sunny with a light breeze from the west.")
    target = tmp_path / "message.wav"

    async def run(ch):
        await ch.answer()
        ch.detect_inband()  # for the talk-off check
        rec = await ch.record(target, max_seconds=5.0, beep=True)
        await asyncio.sleep(0.5)  # the engine's next figures
        return rec, ch.figures["local"]["dtmf"]
    script.run = run
    with ExitStack() as stack:
        ua = _phone(stack, chpbx, said, codecs=(codec,))
        rec, keys = script.outcome()
        ua.hangup()
    assert rec.reason == "max" and abs(rec.seconds - 5.0) <= 0.3, rec
    assert keys == 0, f"speech taken for {keys} keys"
    samples, rate = read_wav(target)
    assert rate == (16000 if codec == "g722" else 8000)
    assert abs(len(samples) / rate - 5.0) <= 0.3, f"{len(samples) / rate:.2f} s recorded"
    samples = _at_rate(samples, rate)
    src = envelope(read_wav(said)[0])
    same, lag = best_correlation(envelope(samples)[:300], src, 150)  # the recording starts after the beep
    different, _ = best_correlation(envelope(samples)[:300], envelope(read_wav(other)[0]), 150)
    assert same > SAME, f"the recording does not match what baresip said ({same:.3f} at {lag * 10} ms)"
    assert different < OTHER, f"another sentence matches as well ({different:.3f})"


@needs_espeak
def test_recording_stops_after_silence(chpbx, script, tmp_path):
    said = speech(tmp_path / "said.wav", "Hello, this is Bob. Call me back.", 20)

    async def run(ch):
        await ch.answer()
        return await ch.record(tmp_path / "message.wav", max_seconds=20.0, silence_stop=1.5, beep=False)
    script.run = run
    with ExitStack() as stack:
        ua = _phone(stack, chpbx, said)
        rec = script.outcome()
        ua.hangup()
    samples, rate = read_wav(Path(rec.path))
    env = envelope(samples, rate // 100)
    last_loud = max(i for i, v in enumerate(env) if v > 300)
    trailing = len(env) / 100 - (last_loud + 1) / 100
    assert rec.reason == "silence" and 1.3 <= trailing <= 1.8, (rec, trailing)
    assert rec.seconds < 6.0


def test_a_key_ends_a_recording(chpbx, script, tmp_path):
    async def run(ch):
        await ch.answer()
        return await ch.record(tmp_path / "message.wav", max_seconds=20.0, beep=True, terminators="#0")
    script.run = run
    with ExitStack() as stack:
        ua = _phone(stack, chpbx, None)
        time.sleep(1.5)
        ua.send_dtmf("0")
        rec = script.outcome()
        ua.hangup()
    assert (rec.reason, rec.key) == ("key", "0") and 0.8 < rec.seconds < 2.5, rec
    samples, rate = read_wav(Path(rec.path))
    assert abs(len(samples) / rate - rec.seconds) < 0.05


# -- keys ----------------------------------------------------------------------------------------------
def test_rfc4733_keys_interrupt_a_play_and_are_collected(chpbx, script):
    async def run(ch):
        await ch.answer()
        first = await ch.play(Tone((425.0,), 20.0), interruptible=True)
        return first, await ch.collect(4, timeout=5.0, terminator="#")
    script.run = run
    with ExitStack() as stack:
        ua = _phone(stack, chpbx, None)
        ua.wait_rtp(rx=20)
        ua.send_dtmf("5")
        time.sleep(0.5)
        ua.send_dtmf("123#")
        first, digits = script.outcome()
        ua.hangup()
    assert (first, digits) == ("5", "123")


def test_keys_sent_to_the_phone_as_rfc4733(chpbx, script):
    async def run(ch):
        await ch.answer()
        ch.send_dtmf("27#")
        await ch.wait_gone(2.0)
    script.run = run
    with ExitStack() as stack:
        ua = _phone(stack, chpbx, None)
        script.outcome()
        ua.wait_for("CALL_CLOSED")
    assert ua.dtmf_received == "27#"


def _dtmf_wav(path: Path, keys: str) -> Path:
    samples = [0] * 8000
    for key in keys:
        tone = dsp.dtmf_tone(key, 8000, 0.12)
        pcm = tone.read(960)
        samples += list(struct.unpack("<960h", pcm)) + [0] * 960
    return write_wav(path, samples + [0] * 8000 * 10)


def test_inband_tones_are_collected(chpbx, script, tmp_path):
    """A phone that sends keys as tones in the audio (baresip plays them from its source file; it offers
    telephone-event too, so the application asks for tone detection): the engine's detector hears them."""
    async def run(ch):
        await ch.answer()
        ch.detect_inband()
        return await ch.collect(4, timeout=6.0)
    script.run = run
    with ExitStack() as stack:
        _phone(stack, chpbx, _dtmf_wav(tmp_path / "keys.wav", "4907"))
        assert script.outcome() == "4907"


def test_hold_and_resume_reach_the_application(chpbx, script):
    async def run(ch):
        await ch.answer()
        kinds = []
        for _ in range(2):
            event = await ch.next_event(timeout=10)
            kinds.append(event and event.kind)
        return kinds
    script.run = run
    with ExitStack() as stack:
        ua = _phone(stack, chpbx, None)
        time.sleep(0.3)
        ua.hold()
        time.sleep(0.5)
        ua.resume()
        assert script.outcome() == ["hold", "resume"]
        ua.hangup()


# -- the caller hangs up -------------------------------------------------------------------------------
@pytest.mark.parametrize("during", ["play", "record", "collect"])
def test_caller_hanging_up_raises_channel_gone(chpbx, script, tmp_path, during):
    target = tmp_path / "partial.wav"
    at_gone = []

    async def run(ch):
        await ch.answer()
        if during == "play":
            await ch.play(Tone((425.0,), 60.0))
        elif during == "record":
            try:
                await ch.record(target, max_seconds=60, beep=False)
            except ChannelGone:
                at_gone.append(len(read_wav(target)[0]))  # what the application finds when told
                raise
        else:
            await ch.collect(4, timeout=60)
    script.run = run
    talk = write_wav(tmp_path / "talk.wav", [int(6000 * math.sin(2 * math.pi * 300 * n / 8000))
                                            for n in range(8000 * 30)])

    with ExitStack() as stack:
        ua = _phone(stack, chpbx, talk)
        answered = time.monotonic()
        time.sleep(2.5)
        hung_up = time.monotonic()
        ua.hangup()
        ua.wait_for("CALL_CLOSED")
        script.outcome(10)
    assert isinstance(script.error, ChannelGone), script.error
    if during == "record":
        assert script.error.recording == str(target)
        heard = len(read_wav(target)[0])
        assert abs(heard / 8000 - (hung_up - answered)) <= 0.3, f"{heard / 8000:.2f} s of {hung_up - answered:.2f}"
        assert at_gone == [heard], "the file was not complete when the application was told of the hang-up"
    assert chpbx.svc.active_calls() == []
    relay = chpbx.svc.core.relay  # the closed side was kept for its last events, and only until "closed"
    wait(lambda: not relay.closing, 5, "the relay to drop the closed sides")


def test_bridge_hands_the_caller_to_an_extension(chpbx, script):
    """An attendant-style script: a tone, then the caller is passed to 202 (baresip answering) and the
    two phones hear each other; the application has left the call."""
    async def run(ch):
        await ch.answer()
        await ch.play(Tone((440.0,), 0.5), interruptible=False)
        return await ch.bridge("202")
    script.run = run
    with ExitStack() as stack:
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=chpbx.registrar,
                                          auto_answer=True))
        bob.register()
        alice = _phone(stack, chpbx, None)
        assert script.outcome() is True
        bob.wait_for("CALL_ESTABLISHED")
        before = alice.rtp_stats()["rx"]
        bob.wait_rtp(rx=50)
        wait(lambda: alice.rtp_stats()["rx"] > before + 50, what="bob's audio at alice")
        [call] = chpbx.svc.active_calls()
        assert call["state"] == "connected" and call["devices"] == ["201", "202"], call  # no app:script any more
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
