"""The engine's recording tap on its own (media/tap.py), with UDP parties on loopback: the relayed media
still flows while it records; the disk limit of a recording (max_bytes) ends it with the file complete;
an engine killed mid-recording leaves a valid WAV with what was written; RFC 4733 keys are reported and
still forwarded."""
import asyncio
import math
import os
import random
import signal
import struct
import wave

from services.pbx.media import dsp
from services.pbx.relay import RtpRelay

from .conftest import run
from .test_media_engine import drain, udp, until

HOST = "127.0.0.1"


def _tone(hz: int) -> bytes:
    pcm = struct.pack("<160h", *(int(6000 * math.sin(2 * math.pi * hz * n / 8000)) for n in range(160)))
    return dsp.Codec("PCMU").encode(pcm)  # 20 ms of a whole number of periods for 600 and 1000 Hz


def _packet(seq: int, ssrc: int, payload: bytes, pt: int = 0, ts: int | None = None) -> bytes:
    ts = seq * 160 if ts is None else ts
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


class Call:
    """Two parties on loopback talking through a relay pair for `seconds`."""

    def __init__(self, relay: RtpRelay) -> None:
        self.relay = relay
        self.a_sock, self.b_sock = udp(HOST), udp(HOST)
        self.events: list[dict] = []
        self.received_b: list[bytes] = []

    async def open(self):
        self.a, self.b = await self.relay.pair()
        for side, sock in ((self.a, self.a_sock), (self.b, self.b_sock)):
            side.set_peer(HOST, sock.getsockname()[1])
            side.listener = self.events.append
        return self

    async def talk(self, seconds: float, keys: dict[int, tuple[int, int]] | None = None) -> None:
        """Both send a tone every 20 ms; `keys`: frame -> (RFC 4733 event, the frame it began) alice sends
        instead of audio (the packets of one key share its timestamp)."""
        a_tone, b_tone = _tone(600), _tone(1000)
        for n in range(int(seconds / 0.02)):
            if keys and n in keys:
                event, began = keys[n]
                payload = struct.pack("!BBH", event, 10, 160 * (n - began + 1))
                self.a_sock.sendto(_packet(n, 1, payload, 101, began * 160), (HOST, self.a.port))
            else:
                self.a_sock.sendto(_packet(n, 1, a_tone), (HOST, self.a.port))
            self.b_sock.sendto(_packet(n, 2, b_tone), (HOST, self.b.port))
            await asyncio.sleep(0.02)
            self.received_b += [data for data, _ in drain(self.b_sock)]

    def close(self) -> None:
        self.a_sock.close()
        self.b_sock.close()


def _relay() -> RtpRelay:
    base = 42000 + 2 * random.randrange(400)
    return RtpRelay(HOST, base, base + 39)


def test_the_disk_limit_of_a_recording_ends_it_and_the_call_goes_on(tmp_path):
    async def main():
        relay = _relay()
        await relay.start()
        try:
            call = await Call(relay).open()
            path = tmp_path / "limited.wav"
            call.a.tap("tap_record", other=call.b.id, record=7, path=str(path), rate=8000, max_bytes=32000)
            await call.talk(2.5)
            done = await until(lambda: [e for e in call.events if e.get("ev") == "record_done"], 3, "record_done")
            before = len(call.received_b)
            await call.talk(0.5)
            assert len(call.received_b) > before + 15, "the media stopped with the recording"
            call.close()
            return done[0], path
        finally:
            await relay.close()
    done, path = run(main())
    assert done["reason"] == "max" and done["record"] == 7, done
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000
        assert w.getnframes() * 4 == 32000  # one second of stereo: exactly the limit
    assert path.stat().st_size == 44 + 32000


def test_a_killed_engine_leaves_a_valid_recording(tmp_path):
    async def main():
        relay = _relay()
        await relay.start()
        try:
            call = await Call(relay).open()
            path = tmp_path / "crash.wav"
            call.a.tap("tap_record", other=call.b.id, record=1, path=str(path), rate=8000, max_bytes=0)
            await call.talk(2.5)
            os.kill(relay.pid, signal.SIGKILL)
            call.close()
            return path
        finally:
            await relay.close()
    path = run(main())
    with wave.open(str(path), "rb") as w:
        frames, data = w.getnframes(), w.readframes(w.getnframes())
    assert frames >= 8000, f"{frames} frames kept of 2.5 s"  # written every second, header patched each time
    assert len(data) == 4 * frames == path.stat().st_size - 44


def test_keys_are_reported_and_still_forwarded(tmp_path):
    async def main():
        relay = _relay()
        await relay.start()
        try:
            call = await Call(relay).open()
            call.a.tap("keys", event_pt=101)
            await asyncio.sleep(0.1)
            star, one = (10, 10), (1, 30)  # "*" in 3 packets of one timestamp (one key), then "1"
            await call.talk(1.0, keys={10: star, 11: star, 12: star, 30: one})
            await until(lambda: len([e for e in call.events if e.get("ev") == "dtmf"]) >= 2, 2, "keys")
            call.close()
            return call
        finally:
            await relay.close()
    call = run(main())
    assert [e["key"] for e in call.events if e.get("ev") == "dtmf"] == ["*", "1"]
    forwarded = [p for p in call.received_b if p[1] & 0x7F == 101]
    assert len(forwarded) == 4, "the key packets did not reach the other party unchanged"
