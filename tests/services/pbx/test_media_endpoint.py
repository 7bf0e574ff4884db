"""The engine's local endpoint against scripted RTP and SIPp: malformed packets and unknown payload types
are dropped and counted while the call goes on, a flood of keys is bounded, the box sends RTCP sender
reports, SIP INFO DTMF (SIPp) is collected, a media engine killed with SIGKILL during a recording leaves
a valid file with everything up to the last second, a full disk ends a recording (not the call), and
the send clock does not drift over 10 minutes."""
from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import struct
import subprocess
import time
import wave

import pytest

from services.pbx.endpoint import MediaError
from services.pbx.media import dsp, engine, terminal

from .conftest import ALICE, run
from .rawphone import in_dialog, invite, next_response, sdp
from .sipclient import SipClient
from .sipp import have_sipp, run_sipp
from .test_channel import (  # noqa: F401 (fixture)
    Script,
    chpbx,  # noqa: F401 (fixture)
    read_wav,
    script,
)
from .test_trunks import wait

TONE = bytes(dsp.Codec("PCMU").encode(dsp.ToneSource([300], 8000, 0.02, amplitude=6000).read(160)))


def _rtp(seq: int, ts: int, pt: int = 0, payload: bytes = TONE, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, 0x4321) + payload


def _event(key: str, seq: int, ts: int, end: bool = False) -> bytes:
    payload = struct.pack("!BBH", dsp.EVENT_KEYS.index(key), (0x80 if end else 0) | 10, 800)
    return _rtp(seq, ts, 101, payload, marker=not end)


class RawCall:
    """A scripted caller of *50: SIP over SipClient, RTP and RTCP on sockets of its own."""

    def __init__(self, pbx, events: bool = True) -> None:
        self.pbx = pbx
        self.events = events  # offer telephone-event
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.port = self.rtp.getsockname()[1]
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.rtcp.bind(("127.0.0.1", self.port + 1))
        except OSError:
            self.rtp.close()
            raise
        for s in (self.rtp, self.rtcp):
            s.setblocking(False)
        self.seq = self.ts = 0

    async def __aenter__(self) -> "RawCall":
        self.sip = await SipClient(("127.0.0.1", self.pbx.port)).__aenter__()
        offer = sdp(self.port)
        if not self.events:
            offer = offer.replace(b" 0 101\r\n", b" 0\r\n").replace(b"a=rtpmap:101 telephone-event/8000\r\n", b"")
        req = self.sip.request("INVITE", f"sip:*50@127.0.0.1:{self.pbx.port}", "201", body=offer)
        await invite(self.sip, req, "201", ALICE["sip_secret"])
        self.ok = await next_response(self.sip, 200)
        self.sip.send(in_dialog(self.sip, "ACK", self.ok, self.ok.call_id))
        self.relay = int(self.ok.body.decode().split("m=audio ")[1].split()[0])
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            self.sip.send(in_dialog(self.sip, "BYE", self.ok, self.ok.call_id))
        finally:
            await self.sip.__aexit__(*exc)
            self.rtp.close()
            self.rtcp.close()

    def send(self, data: bytes) -> None:
        self.rtp.sendto(data, ("127.0.0.1", self.relay))

    def audio(self) -> None:
        self.seq += 1
        self.ts += 160
        self.send(_rtp(self.seq, self.ts))

    def key(self, key: str) -> None:
        """One RFC 4733 key: a start packet and three end packets, one timestamp."""
        self.ts += 160
        for n in range(4):
            self.seq += 1
            self.send(_event(key, self.seq, self.ts, end=n > 0))


def _channel(pbx):
    [call] = [c for c in pbx.svc.core.calls.values()]
    return next(p for p in call.legs if p.kind == "media")


def test_malformed_rtp_is_counted_not_fatal_and_sender_reports_arrive(chpbx, script):  # noqa: F811
    async def app(ch):
        await ch.answer()
        keys = await ch.collect(2, timeout=15)
        await asyncio.sleep(1.0)  # figures come 4 times a second, the first sender report after 0.5 s
        return keys, ch.figures
    script.run = app

    async def main():
        async with RawCall(chpbx) as phone:
            for _ in range(10):
                phone.audio()
                await asyncio.sleep(0.02)
            garbage = [b"", b"\x80", b"\x00" * 20,  # empty, too short, RTP version 0
                       b"\x8f" + b"\x00" * 15,  # 15 CSRCs announced, none there
                       b"\x90" + b"\x00" * 11 + b"\x00\x00\xff\xff",  # a header extension longer than the packet
                       b"\xa0\x00" + b"\x00" * 10 + b"\x01",  # padding eating the whole payload
                       ]
            for data in garbage:
                phone.send(data)
            for seq in range(5):
                phone.send(_rtp(1000 + seq, 0, pt=77))  # a payload type nobody negotiated
            phone.key("7")
            for _ in range(5):
                phone.audio()
                await asyncio.sleep(0.02)
            phone.key("3")
            keys, figures = await asyncio.to_thread(script.outcome, 10)
            assert keys == "73"  # the call survived it all
            reports = []
            for _ in range(80):  # the first report comes within a second, then every 5 s
                reports += [r for r in _drain(phone.rtcp) if len(r) >= 28 and r[1] == 200]
                if reports:
                    break
                await asyncio.sleep(0.1)
            audio = _drain(phone.rtp)
            return reports, audio, figures
    reports, audio, figures = run(main())
    assert figures["local"]["malformed"] == 6 and figures["local"]["unknown_pt"] == 5, figures
    assert reports, "no RTCP sender report from the box"
    ssrc, _, _, _, packets, octets = struct.unpack_from("!IIIIII", reports[0], 4)
    assert packets > 0 and octets == 160 * packets  # what it sent so far, 20 ms of G.711 each
    assert {struct.unpack_from("!I", a, 8)[0] for a in audio if len(a) > 12} == {ssrc}


def test_a_flood_of_keys_is_bounded(chpbx, script):  # noqa: F811
    async def app(ch):
        await ch.answer()
        keys = await ch.collect(1000, timeout=1.5)
        return keys, ch
    script.run = app

    async def main():
        async with RawCall(chpbx) as phone:
            for n in range(200):  # 200 keys in about half a second
                phone.key("0123456789"[n % 10])
                if n % 20 == 0:
                    await asyncio.sleep(0.05)
            keys, ch = await asyncio.to_thread(script.outcome, 15)
            await asyncio.sleep(0.5)  # the next figures from the engine
            return keys, ch
    keys, ch = run(main())
    assert 0 < len(keys) <= 2 * terminal.DTMF_RATE, len(keys)
    wait(lambda: ch.figures["local"]["dtmf_dropped"] >= 200 - 2 * terminal.DTMF_RATE, what="the dropped keys counted")


@pytest.mark.skipif(not have_sipp(), reason="SIPp is not installed (apt-get install sip-tester)")
def test_sip_info_dtmf_is_collected(chpbx, script, tmp_path):  # noqa: F811
    async def app(ch):
        await ch.answer()
        keys = await ch.collect(2, timeout=10)
        await ch.wait_gone(5)  # SIPp's scenario ends with its own BYE
        return keys
    script.run = app
    out = run_sipp("info_dtmf.xml", chpbx.registrar, "*50", "201", ALICE["sip_secret"], tmp_path)
    assert out.returncode == 0, f"SIPp failed:\n{out.errors[-3000:]}\n{out.stdout[-2000:]}"
    assert script.outcome(10) == "42"


def test_recording_survives_the_engine_killed(chpbx, script, tmp_path):  # noqa: F811
    target = tmp_path / "message.wav"

    async def app(ch):
        await ch.answer()
        await ch.record(target, max_seconds=60, beep=False)
    script.run = app

    async def main():
        async with RawCall(chpbx) as phone:
            start = time.monotonic()
            for n in range(175):  # 3.5 s, paced by the schedule, not by how late sleep() wakes
                phone.audio()
                await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
            os.kill(chpbx.svc.core.relay.pid, signal.SIGKILL)
            return time.monotonic() - start
    spoke = run(main())
    samples, rate = read_wav(target)  # a valid WAV: its header says how much audio is in it
    seconds = len(samples) / rate
    assert spoke - 1.0 <= seconds <= spoke + 0.1, f"{seconds:.2f} s kept of {spoke:.2f} s said"
    rms = math.sqrt(sum(x * x for x in samples[-800:]) / 800)
    assert rms > 1000, "the kept audio is not what was said"


def test_the_send_clock_does_not_drift_over_ten_minutes():
    """A Terminal clocked by an irregular loop (wake-ups late by 0-27 ms, a 150 ms stall) over 600 s of
    monotonic time sends exactly 30000 frames, and its timestamps are those of the schedule."""
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv.bind(("127.0.0.1", 0))
    recv.setblocking(False)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        side = engine.Side(1, 0, *socks)
        side.set_peer("127.0.0.1", recv.getsockname()[1], 8000, None, False)
        events = []

        class Control:
            send = events.append
        term = terminal.Terminal(Control(), side, "PCMU", 0, 101, True)
        term.start_play(1, dsp.ToneSource([400], 8000, 700.0))
        start = now = term.start
        last = None
        step = 0
        while now < start + 600.0:
            step += 1
            now += 0.02 + (0.15 if step == 10000 else (step * 7919 % 28) / 1000)
            now = min(now, start + 600.0)
            term.clock(now)
            for pkt in _drain(recv):
                last = pkt
        assert term.frames == 30000 and term.late == 0
        seq, ts = struct.unpack_from("!HI", last, 2)
        assert (ts - term.ts0) & 0xFFFFFFFF == 29999 * 160
        assert term.sent == 30000
    finally:
        for s in (recv, *socks):
            s.close()


def _drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            return out


def test_a_delayed_offer_caller_is_spoken_to_in_the_codec_it_chose(chpbx, script):  # noqa: F811
    """An INVITE without SDP: the box offers in its 200, the caller answers PCMA in the ACK, and what the
    application plays arrives as PCMA."""
    async def app(ch):
        await ch.answer()
        await ch.play(dsp_tone(), interruptible=False)
    script.run = app

    async def main():
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.setblocking(False)
        port = rtp.getsockname()[1]
        try:
            async with SipClient(("127.0.0.1", chpbx.port)) as x:
                req = x.request("INVITE", f"sip:*50@127.0.0.1:{chpbx.port}", "201")
                await invite(x, req, "201", ALICE["sip_secret"])
                ok = await next_response(x, 200)
                offered = ok.body.decode()
                answer = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                          f"m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n").encode()
                x.send(in_dialog(x, "ACK", ok, ok.call_id, body=answer))
                await asyncio.to_thread(script.outcome, 10)
                got = _drain(rtp)
                x.send(in_dialog(x, "BYE", ok, ok.call_id))
                return offered, got
        finally:
            rtp.close()
    offered, got = run(main())
    assert "PCMA/8000" in offered and "telephone-event/8000" in offered
    types = {pkt[1] & 0x7F for pkt in got if len(pkt) > 12}
    assert types == {8}, types


def dsp_tone():
    from services.pbx.endpoint import Tone
    return Tone((500.0,), 1.0)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (about 4 s of 8 kHz audio): a disk that fills up during a recording."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_ends_the_recording_not_the_call(chpbx, script, small_disk):  # noqa: F811
    """The disk fills up 4 s into a recording: record() raises MediaError with the reason, the file
    keeps what fit (a valid WAV), and the channel goes on (it still hears keys)."""
    target = small_disk / "message.wav"

    async def app(ch):
        await ch.answer()
        try:
            await ch.record(target, max_seconds=60, beep=False)
        except MediaError as exc:
            error = str(exc)
        return error, await ch.collect(1, timeout=10)
    script.run = app

    async def main():
        async with RawCall(chpbx) as phone:
            start = time.monotonic()
            for n in range(300):  # 6 s of audio, more than fits
                phone.audio()
                await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
            phone.key("9")
            return await asyncio.to_thread(script.outcome, 10)
    error, key = run(main())
    assert "No space left" in error and key == "9"
    samples, rate = read_wav(target)
    assert 3.0 < len(samples) / rate < 4.2, len(samples) / rate


def test_tones_are_heard_from_a_phone_without_telephone_event(chpbx, script):  # noqa: F811
    """No telephone-event in the offer: the engine looks for tones by itself (no detect_inband())."""
    async def app(ch):
        await ch.answer()
        return await ch.collect(3, timeout=5), ch.sdp.to_bytes()
    script.run = app
    codec = dsp.Codec("PCMU")

    async def main():
        async with RawCall(chpbx, events=False) as phone:
            start, n = time.monotonic(), 0
            for key in "5*9":
                tone = dsp.dtmf_tone(key, 8000, 0.1)
                for pcm in [tone.read(160) for _ in range(5)] + [bytes(320)] * 5:
                    n += 1
                    phone.send(_rtp(n, n * 160, payload=codec.encode(pcm)))
                    await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
            return await asyncio.to_thread(script.outcome, 10)
    keys, answer = run(main())
    assert keys == "5*9" and b"telephone-event" not in answer


def test_recording_puts_packets_in_order_and_fills_loss(chpbx, script, tmp_path):  # noqa: F811
    """Packets reordered, duplicated and lost on the way: the file has them in sequence order, each
    once, and silence where two were lost."""
    target = tmp_path / "message.wav"

    async def app(ch):
        await ch.answer()
        return await ch.record(target, max_seconds=60, beep=False, terminators="#")
    script.run = app
    codec = dsp.Codec("PCMU")
    level = {n: 1000 * n for n in range(1, 13)}  # frame n is a constant level of n thousand

    async def main():
        async with RawCall(chpbx) as phone:
            await asyncio.sleep(0.3)  # the recording has started
            for n in (1, 2, 4, 3, 5, 5, 6, 9, 10, 11, 12):
                phone.send(_rtp(100 + n, n * 160, payload=codec.encode(struct.pack("<h", level[n]) * 160)))
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # held packets are written after 60 ms without new ones
            phone.seq, phone.ts = 200, 5000
            phone.key("#")
            return await asyncio.to_thread(script.outcome, 10)
    rec = run(main())
    assert rec.reason == "key"
    samples, _ = read_wav(target)
    frames = [sum(samples[i:i + 160]) // 160 for i in range(0, len(samples), 160)]
    expected = [level[n] if n in (1, 2, 3, 4, 5, 6, 9, 10, 11, 12) else 0 for n in range(1, 13)]
    assert [round(f, -3) for f in frames] == expected, frames


def test_hold_stops_the_box_sending_and_reaches_the_application(chpbx, script):  # noqa: F811
    async def app(ch):
        await ch.answer()
        kinds = []
        for _ in range(2):
            event = await ch.next_event(timeout=10)
            kinds.append((event.kind, ch.held))
        await ch.wait_gone(10)
        return kinds
    script.run = app

    async def reinvite(phone, extra: str) -> bytes:
        phone.sip.send(in_dialog(phone.sip, "INVITE", phone.ok, phone.ok.call_id, body=sdp(phone.port, extra)))
        ok = await next_response(phone.sip, 200)
        phone.sip.send(in_dialog(phone.sip, "ACK", ok, ok.call_id))
        return ok.body

    async def received(phone, seconds: float) -> int:
        await asyncio.sleep(0.2)  # what was on its way
        _drain(phone.rtp)
        await asyncio.sleep(seconds)
        return len(_drain(phone.rtp))

    async def main():
        async with RawCall(chpbx) as phone:
            before = await received(phone, 0.5)
            held_answer = await reinvite(phone, "a=sendonly\r\n")
            during = await received(phone, 0.5)
            await reinvite(phone, "a=sendrecv\r\n")
            after = await received(phone, 0.5)
            return before, held_answer, during, after
    before, held_answer, during, after = run(main())
    assert b"a=recvonly" in held_answer
    assert before >= 15 and during == 0 and after >= 15, (before, during, after)
    assert script.outcome(15) == [("hold", True), ("resume", False)]


def test_unplayable_files_raise_media_error_and_the_call_goes_on(chpbx, script, tmp_path):  # noqa: F811
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(3200))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")

    async def app(ch):
        await ch.answer()
        errors = []
        for path in (tmp_path / "missing.wav", stereo, broken):
            try:
                await ch.play(path)
            except MediaError as exc:
                errors.append(str(exc))
        return errors, await ch.collect(1, timeout=10)
    script.run = app

    async def main():
        async with RawCall(chpbx) as phone:
            await asyncio.sleep(0.5)
            phone.key("1")
            return await asyncio.to_thread(script.outcome, 10)
    errors, key = run(main())
    assert key == "1" and len(errors) == 3, errors
    assert "no such file" in errors[0] and "not 16-bit mono PCM" in errors[1] and "cannot read" in errors[2]
