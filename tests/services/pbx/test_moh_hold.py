"""Music on hold (holdmusic.py): a baresip phone (alice, sending a steady 1900 Hz tone,
a frequency where the built-in track has under 1 % of its power) calls bob and puts
him on hold with its own re-INVITE (sendonly), then resumes. Bob is a scripted phone that records every RTP
packet it gets with its arrival time and sends a 600 Hz tone: baresip 1.0 stops writing what it hears at
the first re-INVITE of a call, so the held party's ear has to be ours. While alice holds, what bob hears
is the box's music (energy, a spread spectrum, not silence and not a tone: the measure of test_moh.py)
and not alice's tone; after she resumes he hears her tone again and she gets his audio again.
Stretches leave out a second after each re-INVITE."""
from __future__ import annotations

import asyncio
import math
import shutil
import struct
import subprocess
import threading
import time
from contextlib import ExitStack

import pytest

from services.pbx.media import dsp
from services.pbx.prompts import audio
from services.pbx.sdp import Sdp

from .conftest import ALICE, BOB, CAROL, DAVE, run
from .pbxrunner import PbxRunner, config
from .rawphone import answer, in_dialog, next_request, next_response, sdp
from .sipclient import SipClient
from .test_channel import AudioBaresip, have_baresip, write_wav
from .test_conformance_calls import _answered_call, _hang_up, _invite, _registered
from .test_moh import spectrum, spread

ALICE_HZ = 1900  # the built-in track has 0.15-0.35 % of its power within 50 Hz of it (measured)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(not shutil.which("sox"), reason="sox is needed")]


def tone_file(path, freq: int, seconds: int = 60):
    subprocess.run(["sox", "-V1", "-n", "-r", "8000", "-b", "16", "-c", "1", str(path), "synth", str(seconds),
                    "sine", str(freq), "vol", "0.3"], check=True, timeout=60)
    return path


class ScriptedPhone:
    """Bob: registers, answers the call and every re-INVITE (sendonly -> recvonly), sends 600 Hz while
    the call is not held, keeps (arrival time, PCM) of every RTP packet; `holds` the re-INVITE times."""

    def __init__(self, pbx) -> None:
        self.pbx = pbx
        self.heard: list[tuple[float, bytes]] = []
        self.reinvites: list[tuple[float, str]] = []
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(asyncio.wait_for(self._phone(), 60))
        except BaseException as exc:  # noqa: BLE001 (the test looks at it)
            self.error = exc
        finally:
            self.done.set()

    async def _phone(self) -> None:
        loop = asyncio.get_running_loop()
        codec = dsp.Codec("PCMU")
        heard = self.heard

        class Rtp(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr) -> None:
                if len(data) > 12 and data[1] & 0x7F == 0:
                    heard.append((time.monotonic(), codec.decode(data[12:])))
        rtp, _ = await loop.create_datagram_endpoint(Rtp, local_addr=("127.0.0.1", 0))
        port = rtp.get_extra_info("sockname")[1]
        try:
            async with SipClient(("127.0.0.1", self.pbx.port)) as sip:
                assert (await sip.register("202", BOB["sip_secret"])).status == 200
                self.ready.set()
                peer, sending, seq = None, True, 0
                sender = loop.create_task(self._send(rtp, lambda: peer if sending else None))
                try:
                    while True:
                        msg = await sip.recv(30)
                        method = getattr(msg, "method", None)
                        if method == "INVITE":
                            offer = Sdp.parse(msg.body)
                            m = offer.audio()
                            peer = (offer.address(m), m.port)
                            direction = m.direction
                            if seq:
                                self.reinvites.append((time.monotonic(), direction))
                            seq += 1
                            sending = direction in ("sendrecv", "recvonly")
                            mine = {"sendonly": "a=recvonly\r\n", "inactive": "a=inactive\r\n"}.get(direction, "")
                            answer(sip, msg, 200, "bobtag", sdp(port, mine))
                        elif method == "BYE":
                            answer(sip, msg, 200, "bobtag")
                            return
                finally:
                    sender.cancel()
        finally:
            rtp.close()

    @staticmethod
    async def _send(rtp, peer) -> None:
        codec, seq, ts, ssrc = dsp.Codec("PCMU"), 0, 0, 0x1234
        start = time.monotonic()
        while True:
            pcm = struct.pack("<160h", *(int(8000 * math.sin(2 * math.pi * 600 * (ts + i) / 8000)) for i in range(160)))
            dest = peer()
            if dest is not None:
                header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                rtp.sendto(header + codec.encode(pcm), dest)
                seq += 1
            ts += 160
            await asyncio.sleep(max(0.0, start + ts / 8000 - time.monotonic()))

    def stretch(self, path, start: float, end: float):
        """What bob heard between two instants (monotonic), as a WAV."""
        pcm = b"".join(p for t, p in self.heard if start <= t < end)
        return write_wav(path, list(struct.unpack(f"<{len(pcm) // 2}h", pcm)))


def share_at(powers: dict[int, float], freq: int) -> float:
    """The share of the power within 50 Hz of `freq`."""
    return sum(p for f, p in powers.items() if abs(f - freq) <= 50) / sum(powers.values())


def _measure(path) -> tuple[dict[int, float], float]:
    rate, data = audio.samples(path)
    return spectrum(path, 0.0, len(data) / rate - 0.05), audio.dbfs(data)


@pytest.mark.parametrize("moh_class", ["default", "missing"])
def test_the_held_party_hears_music_and_both_hear_each_other_after_resume(tmp_path, moh_class):
    """"missing": alice's moh_class names no class, which falls back to the default (built-in track)."""
    cfg = config([ALICE, BOB, CAROL, DAVE], digest_algorithms=["MD5"], codecs=["PCMU"],
                 extensions={"201": {"moh_class": moh_class}})
    with PbxRunner(tmp_path / "pbx", cfg) as pbx, ExitStack() as stack:
        bob = ScriptedPhone(pbx)
        bob.thread.start()
        assert bob.ready.wait(10)
        alice = stack.enter_context(AudioBaresip("alice", tone_file(tmp_path / "alice.wav", ALICE_HZ), user="201",
                                                 password=ALICE["sip_secret"], registrar=pbx.registrar,
                                                 codecs=("pcmu",)))
        alice.register()
        alice.dial("202")
        alice.wait_for("CALL_ESTABLISHED")
        established = time.monotonic()
        time.sleep(2.5)
        alice.hold()
        time.sleep(6.5)
        rx_held = alice.rtp_stats()["rx"]
        alice.resume()
        time.sleep(1.0)
        rx_resumed = alice.rtp_stats()["rx"]
        alice.wait_rtp(rx=rx_resumed + 100, timeout=5)  # bob's audio reaches her again
        time.sleep(1.5)
        ended = time.monotonic()
        alice.hangup()
        assert bob.done.wait(10) and bob.error is None, bob.error
    (held_at, held_dir), (resumed_at, resumed_dir) = bob.reinvites
    assert (held_dir, resumed_dir) == ("sendonly", "sendrecv")  # bob is offered music, then the call back
    before, _ = _measure(bob.stretch(tmp_path / "before.wav", established + 0.5, held_at))
    during, level = _measure(bob.stretch(tmp_path / "during.wav", held_at + 1.0, resumed_at))
    after, _ = _measure(bob.stretch(tmp_path / "after.wav", resumed_at + 1.0, ended))
    share, strong = spread(during)
    print(f"on hold {resumed_at - held_at:.1f} s: music share {share:.2f}, {strong} strong, {level:.1f} dBFS; "
          f"{ALICE_HZ} Hz share before {share_at(before, ALICE_HZ):.2f}, on hold "
          f"{share_at(during, ALICE_HZ):.2f}, after {share_at(after, ALICE_HZ):.2f}; "
          f"alice got {rx_held} packets before resuming, {rx_resumed} a second after")
    assert share_at(before, ALICE_HZ) > 0.8  # the measure sees alice's tone when it is there
    assert level > -40, f"bob hears silence on hold ({level:.1f} dBFS)"
    # over ~5 s of the built-in track: share 0.25-0.30, 27-33 strong (measured); alice's tone: 1.00, 1-2
    assert share < 0.5 and strong >= 15, f"not music: the strongest frequency has {share:.2f}, {strong} strong"
    assert share_at(during, ALICE_HZ) < 0.05, "alice's tone still reaches bob while she holds"
    assert share_at(after, ALICE_HZ) > 0.8, "bob does not hear alice again after she resumed"


@pytest.mark.parametrize("hold", ["a=inactive\r\n", "a=sendonly\r\n", "zero"])
def test_every_kind_of_hold_offers_the_held_party_music_and_answers_the_holder_in_kind(pbx, hold):
    """Scripted phones on the wire: whatever hold the holder offers (inactive, sendonly, the old 0.0.0.0),
    the held party is offered sendonly from the relay's address, the holder gets inactive to inactive and
    recvonly otherwise; the resume offer reaches the held party as it was sent."""
    body = sdp(4000).replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0") if hold == "zero" else sdp(4000, hold)

    async def main():
        async with _registered(pbx, "201", "202") as (alice, bob):
            req, _, ok = await _answered_call(alice, bob, _invite(alice))
            alice.send(in_dialog(alice, "INVITE", ok, req.call_id, body))
            offered = await next_request(bob, "INVITE")
            m = Sdp.parse(offered.body)
            assert m.audio().direction == "sendonly" and m.address(m.audio()) == "127.0.0.1"
            answer(bob, offered, 200, "bobtag", sdp(4002, "a=recvonly\r\n"))
            held = await next_response(alice, 200)
            wanted = "inactive" if hold == "a=inactive\r\n" else "recvonly"
            assert Sdp.parse(held.body).audio().direction == wanted
            alice.send(in_dialog(alice, "ACK", held, req.call_id))
            for _ in range(50):
                if pbx.sync(lambda: [c.hold_music is not None and c.hold_music.side.local is not None
                                     for c in pbx.svc.core.calls.values()]) == [True]:
                    break
                await asyncio.sleep(0.05)
            assert pbx.sync(lambda: [c.hold_music.holder.extension for c in pbx.svc.core.calls.values()]) == ["201"]
            alice.send(in_dialog(alice, "INVITE", ok, req.call_id, sdp(4000)))
            resumed = await next_request(bob, "INVITE")
            assert Sdp.parse(resumed.body).audio().direction == "sendrecv"
            answer(bob, resumed, 200, "bobtag", sdp(4002))
            back = await next_response(alice, 200)
            assert Sdp.parse(back.body).audio().direction == "sendrecv"
            alice.send(in_dialog(alice, "ACK", back, req.call_id))
            assert pbx.sync(lambda: [c.hold_music for c in pbx.svc.core.calls.values()]) == [None]
            await _hang_up(alice, bob, ok, req)
    run(main())
