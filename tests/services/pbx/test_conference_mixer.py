"""The engine's mixer (services/pbx/media/mixer.py) driven over its control socket like the PBX drives
it, with parties that are plain UDP sockets sending RTP tones: each party receives the others'
frequencies and not its own, G.711 and G.722 parties in one room hear each other, a muted party is
not heard, a party that stops sending never stalls the others (they keep receiving every 20 ms
frame), and sums louder than 16 bits are scaled, not wrapped."""
from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from services.pbx.media import dsp, mixer
from services.pbx.relay import ENGINE

PT = {"PCMU": 0, "PCMA": 8, "G722": 9}


def spectrum_peaks(samples: list[int], rate: int, freqs: list[float]) -> dict[float, float]:
    """Relative power (Goertzel) at each frequency, normalised by the signal's total power."""
    n = len(samples)
    total = sum(x * x for x in samples) or 1
    out = {}
    for f in freqs:
        k = 2 * math.cos(2 * math.pi * f / rate)
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + k * s1 - s2, s1
        power = s1 * s1 + s2 * s2 - k * s1 * s2
        out[f] = 2 * power / (n * total)
    return out


class EngineProcess:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen([sys.executable, "-I", str(ENGINE), str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),))
        theirs.close()
        self.ctl = ours
        self.ctl.settimeout(5)
        self.ids = 0
        base = 24000 + 200 * (os.getpid() % 40)
        self.send({"op": "config", "host": "127.0.0.1", "min": base, "max": base + 199})

    def send(self, msg: dict) -> None:
        self.ctl.send(json.dumps(msg).encode())

    def request(self, msg: dict) -> dict:
        self.ids += 1
        self.send({**msg, "id": self.ids})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reply = json.loads(self.ctl.recv(1 << 20))
            if reply.get("re") == self.ids:
                return reply
            assert reply.get("ev") != "error", reply
        raise AssertionError("the engine did not answer")

    def close(self) -> None:
        self.ctl.close()
        self.proc.wait(5)


class Party:
    """A phone as sockets: sends a steady tone (or nothing) in `codec`, keeps what it receives."""

    def __init__(self, engine: EngineProcess, codec: str, freq: float | None) -> None:
        self.codec_name, self.freq = codec, freq
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        [[self.side, self.relay]] = engine.request({"op": "open", "count": 1})["sides"]
        engine.send({"op": "peer", "side": self.side, "ip": "127.0.0.1", "port": self.sock.getsockname()[1],
                     "rate": 8000})
        engine.send({"op": "local", "side": self.side, "codec": codec, "pt": PT[codec], "event_pt": None,
                     "send": True, "inband": False})
        self.enc, self.dec = dsp.Codec(codec), dsp.Codec(codec)
        rate = dsp.RATES[codec]
        self.rate = rate
        self.tone = dsp.ToneSource([freq], rate, 3600, amplitude=8000) if freq else None
        self.seq = self.ts = 0
        self.sending = True
        self.received: list[tuple[float, bytes]] = []

    def tick(self) -> None:
        if self.tone is not None and self.sending:
            payload = self.enc.encode(self.tone.read(int(self.rate * dsp.FRAME)))
            self.seq += 1
            self.ts += 160
            header = struct.pack("!BBHII", 0x80, PT[self.codec_name], self.seq & 0xFFFF, self.ts, 0x1234)
            self.sock.sendto(header + payload, ("127.0.0.1", self.relay))
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                break
            if len(data) > 12 and data[1] & 0x7F == PT[self.codec_name]:
                self.received.append((time.monotonic(), data[12:]))

    def heard(self, last: float) -> list[int]:
        """The decoded audio of the last `last` seconds received."""
        frames = self.received[-int(last / dsp.FRAME):]
        pcm = b"".join(self.dec.decode(p) for _, p in frames)
        return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def run_parties(parties: list[Party], seconds: float, during=None) -> None:
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        for p in parties:
            p.tick()
        if during is not None:
            during(time.monotonic() - start)
        n += 1
        time.sleep(max(0.0, start + n * dsp.FRAME - time.monotonic()))


@pytest.fixture
def engine():
    e = EngineProcess()
    yield e
    e.close()


FREQS = [400.0, 700.0, 1000.0, 1300.0, 1700.0]


def _check_hears_others(parties: list[Party], seconds: float = 1.0) -> None:
    freqs = [p.freq for p in parties]
    for p in parties:
        peaks = spectrum_peaks(p.heard(seconds), p.rate, freqs)
        for q in parties:
            if q is p:
                assert peaks[q.freq] < 0.01, f"{p.freq} Hz hears itself: {peaks}"
            else:
                assert peaks[q.freq] > 0.03, f"{p.freq} Hz does not hear {q.freq} Hz: {peaks}"


@pytest.mark.parametrize("count", [3, 5])
def test_each_party_hears_the_others_and_not_itself(engine, count):
    parties = [Party(engine, "PCMU", f) for f in FREQS[:count]]
    for p in parties:
        engine.send({"op": "conf_join", "side": p.side, "room": "r1"})
    run_parties(parties, 2.0)
    _check_hears_others(parties)
    stats = engine.request({"op": "conf_stats"})["rooms"]["r1"]
    assert len(stats) == count


@pytest.mark.skipif("G722" not in dsp.codecs(), reason="libspandsp (G.722) is not installed")
def test_g722_and_g711_parties_hear_each_other(engine):
    parties = [Party(engine, "G722", 400.0), Party(engine, "PCMA", 1000.0), Party(engine, "PCMU", 1700.0)]
    for p in parties:
        engine.send({"op": "conf_join", "side": p.side, "room": "mixed"})
    run_parties(parties, 2.0)
    _check_hears_others(parties)
    wide = parties[0].heard(1.0)
    assert len(wide) >= 15000  # the G.722 party gets 16 kHz audio


def test_mute_removes_a_party_and_unmute_brings_it_back(engine):
    parties = [Party(engine, "PCMU", f) for f in FREQS[:3]]
    for p in parties:
        engine.send({"op": "conf_join", "side": p.side, "room": "m"})
    engine.send({"op": "conf_mute", "side": parties[0].side, "muted": True})
    run_parties(parties, 1.5)
    for p in parties[1:]:
        peaks = spectrum_peaks(p.heard(1.0), 8000, FREQS[:3])
        assert peaks[FREQS[0]] < 0.01, peaks
    assert spectrum_peaks(parties[0].heard(1.0), 8000, FREQS[:3])[FREQS[1]] > 0.03  # it still hears
    engine.send({"op": "conf_mute", "side": parties[0].side, "muted": False})
    run_parties(parties, 1.5)
    _check_hears_others(parties)


def test_a_silent_party_never_stalls_the_others(engine):
    parties = [Party(engine, "PCMU", f) for f in FREQS[:3]]
    for p in parties:
        engine.send({"op": "conf_join", "side": p.side, "room": "s"})
    run_parties(parties, 1.0)

    def stop_one(t: float) -> None:
        parties[0].sending = False
    before = [len(p.received) for p in parties]
    run_parties(parties, 2.0, stop_one)
    for p, was in zip(parties, before, strict=True):
        got = len(p.received) - was
        assert got >= 95, f"{p.freq} Hz party received {got} frames in 2 s (100 due)"
    gaps = [b - a for (a, _), (b, _) in zip(parties[1].received[-90:], parties[1].received[-89:], strict=False)]
    assert max(gaps) < 0.1  # no stall of the others' stream
    peaks = spectrum_peaks(parties[1].heard(1.0), 8000, FREQS[:3])
    assert peaks[FREQS[0]] < 0.01 and peaks[FREQS[2]] > 0.03, peaks
    missing = {row[0]: row[3] for row in engine.request({"op": "conf_stats"})["rooms"]["s"]}
    assert missing[parties[0].side] >= 50  # its missing frames were counted as silence


def test_loud_sums_are_scaled_not_wrapped():
    mixed = struct.pack("<4i", *(v * mixer.SCALE for v in (60000, -60000, 1000, 0)))
    out = struct.unpack("<4h", mixer._to16(mixed))
    assert out[0] > 32000 and out[1] < -32000  # full scale, not wrapped around to the other sign
    assert 500 <= out[2] <= 600  # the whole frame scaled by the same factor


def test_a_room_tone_reaches_every_member(engine):
    parties = [Party(engine, "PCMU", None), Party(engine, "PCMU", None)]
    for p in parties:
        engine.send({"op": "conf_join", "side": p.side, "room": "t"})
    run_parties(parties, 0.5)
    engine.send({"op": "conf_tone", "room": "t", "tone": {"freqs": [660, 880], "seconds": 1.0, "amplitude": 6000}})
    run_parties(parties, 0.8)
    for p in parties:
        peaks = spectrum_peaks(p.heard(0.4), 8000, [660.0, 880.0, 1000.0])
        assert peaks[660.0] > 0.2 and peaks[880.0] > 0.2 and peaks[1000.0] < 0.01, peaks
