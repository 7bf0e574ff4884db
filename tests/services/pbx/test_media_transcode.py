"""The engine's transcoding link (services/pbx/media/transcode.py) driven over its control socket, with
parties that are UDP sockets sending RTP tones: a PCMU party and a G.722 one (or PCMA) hear each other's
frequency in their own codec, sequence numbers, timestamps and SSRC pass unchanged, telephone-events
change payload type, a one-way link sends nothing back, and a plain "link" afterwards ends it."""
from __future__ import annotations

import socket
import struct
import time

import pytest

from services.pbx.media import dsp

from .test_conference_mixer import PT, EngineProcess, spectrum_peaks

needs_g722 = pytest.mark.skipif("G722" not in dsp.codecs(), reason="libspandsp (G.722) is not installed")


class Phone:
    def __init__(self, engine: EngineProcess, codec: str, freq: float, event_pt: int) -> None:
        self.codec, self.freq, self.event_pt = codec, freq, event_pt
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        [[self.side, self.port]] = engine.request({"op": "open", "count": 1})["sides"]
        engine.send({"op": "peer", "side": self.side, "ip": "127.0.0.1", "port": self.sock.getsockname()[1],
                     "rate": 8000})
        self.enc, self.dec = dsp.Codec(codec), dsp.Codec(codec)
        self.rate = dsp.RATES[codec]
        self.tone = dsp.ToneSource([freq], self.rate, 3600, amplitude=8000)
        self.seq, self.ts = 1000, 5000
        self.received: list[bytes] = []

    @property
    def spec(self) -> list:
        return [self.codec, PT[self.codec], self.event_pt]

    def send(self, payload: bytes | None = None, pt: int | None = None) -> None:
        if payload is None:
            payload, pt = self.enc.encode(self.tone.read(int(self.rate * dsp.FRAME))), PT[self.codec]
        self.seq += 1
        self.ts += 160
        header = struct.pack("!BBHII", 0x80, pt, self.seq & 0xFFFF, self.ts, 0xABCD0000 + PT[self.codec])
        self.sock.sendto(header + payload, ("127.0.0.1", self.port))

    def drain(self) -> None:
        while True:
            try:
                self.received.append(self.sock.recv(2048))
            except BlockingIOError:
                return

    def heard(self) -> list[int]:
        audio = [d for d in self.received if d[1] & 0x7F == PT[self.codec]][-40:]
        pcm = b"".join(self.dec.decode(d[12:]) for d in audio)
        return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def talk(phones: list[Phone], frames: int = 75) -> None:
    start = time.monotonic()
    for n in range(frames):
        for p in phones:
            p.send()
            p.drain()
        time.sleep(max(0.0, start + (n + 1) * dsp.FRAME - time.monotonic()))
    time.sleep(0.1)
    for p in phones:
        p.drain()


@pytest.fixture
def engine():
    e = EngineProcess()
    yield e
    e.close()


@pytest.mark.parametrize("other", [pytest.param("G722", marks=needs_g722), "PCMA"])
def test_each_party_hears_the_other_in_its_own_codec(engine, other):
    narrow, wide = Phone(engine, "PCMU", 520.0, 101), Phone(engine, other, 1020.0, 96)
    engine.send({"op": "transcode", "side": narrow.side, "to": wide.side, "codecs": [narrow.spec, wide.spec]})
    talk([narrow, wide])
    for me, them in ((narrow, wide), (wide, narrow)):
        assert me.received and all(d[1] & 0x7F == PT[me.codec] for d in me.received)
        peaks = spectrum_peaks(me.heard(), me.rate, [me.freq, them.freq])
        assert peaks[them.freq] > 0.3 and peaks[me.freq] < 0.01, (me.codec, peaks)
    sent = wide.received[-1]
    seq, ts, ssrc = struct.unpack_from("!HII", sent, 2)
    assert ssrc == 0xABCD0000 + PT["PCMU"] and ts == narrow.ts and seq == narrow.seq & 0xFFFF


def test_events_change_payload_type_and_comfort_noise_is_dropped(engine):
    a, b = Phone(engine, "PCMU", 520.0, 101), Phone(engine, "PCMA", 1020.0, 96)
    engine.send({"op": "transcode", "side": a.side, "to": b.side, "codecs": [a.spec, b.spec]})
    a.send()  # latches
    time.sleep(0.05)
    a.send(struct.pack("!BBH", 5, 10, 160), 101)
    a.send(b"\x40", 13)
    time.sleep(0.1)
    b.drain()
    kinds = [d[1] & 0x7F for d in b.received]
    assert kinds == [8, 96] and b.received[1][12:] == struct.pack("!BBH", 5, 10, 160)


def test_one_way_sends_nothing_back_and_a_link_ends_it(engine):
    pager, phone = Phone(engine, "PCMU", 520.0, 101), Phone(engine, "PCMA", 1020.0, 101)
    engine.send({"op": "transcode", "side": pager.side, "to": phone.side, "codecs": [pager.spec, phone.spec],
                 "oneway": True})
    talk([pager, phone], 25)
    assert phone.received and not pager.received
    engine.send({"op": "link", "side": pager.side, "to": phone.side})  # relayed as is again
    phone.received.clear()
    talk([pager, phone], 10)
    assert phone.received and all(d[1] & 0x7F == PT["PCMU"] for d in phone.received)
    assert pager.received and all(d[1] & 0x7F == PT["PCMA"] for d in pager.received)
    assert engine.request({"op": "ping"})["sides"] == 2
