"""Taps on relayed sides, in the engine: what a party sends is still forwarded untouched (but for a
notice tone mixed into it), and besides

- its RFC 4733 keys are reported ({"ev": "dtmf", "side", "key", "source": "relay"}: in-call feature codes);
- with "key_codes", the keys of a feature code are swallowed (keyseq.py): their event packets are held
  back while a code may follow, dropped once it is complete ({"ev": "dtmf_code", "side", "code"}) and
  passed on late otherwise; the side's sequence numbers are renumbered so the other party sees no gap;
- both parties of a call are recorded into one stereo WAV (left: side "side", the caller; right:
  "other", the callee), G.711 and G.722 decoded, resampled to the recording's rate.

The two streams arrive independently, so the recording is clocked by the engine (every tick): each
channel's audio waits in its own queue and `HOLD` seconds after it is due it is written, with silence
where a party sent nothing (hold, loss, a late start), so both channels stay aligned with wall time.
The file is written crash-safely (dsp.WavWriter: the header patched after every chunk).

Ops: {"op": "keys", "side", "event_pt"} (event_pt null: stop), {"op": "key_codes", "side", "event_pt",
"codes", "gap"} (codes empty: stop), {"op": "tap_record", "side", "other",
"record", "path", "rate", "max_bytes"}, {"op": "tap_pause", "side", "paused"} (silence is written
meanwhile), {"op": "tap_stop", "side"}, {"op": "notice", "side", "tone" |
"file"} (mixed into what the side's party sends, so the other party hears it).
Events: "dtmf" as above, {"ev": "record_done", "side", "record", "reason", "seconds", "path"} (reason:
stopped, hangup, max, error), {"ev": "notice_done", "side"}.
"""
from __future__ import annotations

import os
import struct
import time

try:
    from . import dsp
    from .terminal import open_source
except ImportError:  # run as the engine script
    import dsp
    from keyseq import KeySequence
    from terminal import open_source
else:
    from .keyseq import KeySequence

OPS = ("keys", "key_codes", "tap_record", "tap_pause", "tap_stop", "notice")
STATIC = {0: "PCMU", 8: "PCMA", 9: "G722"}  # RFC 3551 payload types: what a relayed packet carries
HOLD = 0.3  # seconds a channel's audio waits before it is written (jitter)
MAX_QUEUE = 1.0  # seconds a channel may run ahead of the clock; more is dropped (a fast sender clock)
DTMF_RATE = 10


class StereoWavWriter(dsp.WavWriter):
    def _header(self, size: int) -> bytes:
        return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " +
                struct.pack("<IHHIIHH", 16, 1, 2, self.rate, self.rate * 4, 4, 16) + b"data" + struct.pack("<I", size))

    def _patch(self) -> None:
        os.pwrite(self.fd, self._header(self.data_bytes & ~3), 0)  # whole stereo frames only

    @property
    def seconds(self) -> float:
        return self.size / (4 * self.rate)


class Listen:
    """What hangs on one side (side.tap): a key watch, a recording channel, a notice to mix in."""

    def __init__(self, engine, side) -> None:
        self.engine, self.side = engine, side
        self.event_pt: int | None = None
        self.last_event_ts: int | None = None
        self.key_times: list[float] = []
        self.channel: Channel | None = None
        self.notice = None  # [request, source, encoder]: mixed into what the party sends
        self.codecs: dict[int, dsp.Codec] = {}
        self.codes: KeySequence | None = None  # in-call feature codes swallowed (key_codes)
        self.held_ts: set[int] = set()  # the events being held back
        self.eaten_ts: list[int] = []  # the last events swallowed: their later packets are dropped too
        self.seq_delta = 0  # added to the party's sequence numbers once packets were held or dropped
        self.last_seq: int | None = None

    @property
    def idle(self) -> bool:
        return (self.event_pt is None and self.channel is None and self.notice is None and self.codes is None
                and not self.seq_delta)

    def codec(self, pt: int) -> dsp.Codec | None:
        if pt not in self.codecs:
            try:
                self.codecs[pt] = dsp.Codec(STATIC[pt])
            except (KeyError, dsp.CodecError):
                return None
        return self.codecs[pt]

    def __call__(self, data: bytes) -> bytes | None:
        """A packet the side accepted from its party: returns what is forwarded (None: nothing)."""
        if len(data) < 12 or data[0] >> 6 != 2:
            return data
        out = data if data[0] & 0x30 else self._look(data)  # extensions, padding: not looked into
        if out is None or (self.codes is None and not self.seq_delta):
            return out
        return self._renumber(out)

    def _look(self, data: bytes) -> bytes | None:
        start = 12 + 4 * (data[0] & 0x0F)
        pt = data[1] & 0x7F
        if pt == self.event_pt:
            key = self._event(data, start)
            return data if self.codes is None else self._code_key(data, key)
        if pt not in STATIC or (self.channel is None and self.notice is None):
            return data
        codec = self.codec(pt)
        if codec is None:
            return data
        try:
            pcm = codec.decode(data[start:])
        except Exception:
            return data
        if self.channel is not None and not self.channel.paused:
            self.channel.push(pcm, codec.rate)
        if self.notice is not None:
            return data[:start] + self._mix(pcm, codec)
        return data

    def _event(self, data: bytes, start: int) -> str | None:
        """The key of a new event (None: more of the last one, a bad or a rate-limited one)."""
        ts = struct.unpack_from("!I", data, 4)[0]
        if len(data) < start + 4 or ts == self.last_event_ts or data[start] >= len(dsp.EVENT_KEYS):
            return None
        self.last_event_ts = ts
        now = time.monotonic()
        self.key_times = [t for t in self.key_times if now - t < 1.0]
        if len(self.key_times) >= DTMF_RATE:
            return None
        self.key_times.append(now)
        key = dsp.EVENT_KEYS[data[start]]
        self.engine.send({"ev": "dtmf", "side": self.side.id, "key": key, "source": "relay"})
        return key

    # -- in-call feature codes (key_codes) --------------------------------------------------------
    def _code_key(self, data: bytes, key: str | None) -> bytes | None:
        ts = struct.unpack_from("!I", data, 4)[0]
        if ts in self.eaten_ts:
            return self._drop(data)
        if ts in self.held_ts:
            self.codes.hold_more(data)
            return self._drop(data)
        if key is None:
            return data  # more of a key that passed
        passed, code = self.codes.press(key, data, time.monotonic())
        self._pass_on([p for p in passed if p is not data])
        if any(p is data for p in passed):
            return data
        if code:
            self.eaten_ts = [*self.eaten_ts[-7:], ts, *self.held_ts]
            self.held_ts = set()
            self.engine.send({"ev": "dtmf_code", "side": self.side.id, "code": code})
        else:
            self.held_ts.add(ts)
        return self._drop(data)

    def _drop(self, data: bytes) -> None:
        """`data` is not forwarded (now): the next packets close the gap in the numbering."""
        if self.last_seq is None:
            self.last_seq = (struct.unpack_from("!H", data, 2)[0] + self.seq_delta - 1) & 0xFFFF
        self.seq_delta -= 1
        return None

    def _renumber(self, data: bytes) -> bytes:
        seq = (struct.unpack_from("!H", data, 2)[0] + self.seq_delta) & 0xFFFF
        self.last_seq = seq
        return data[:2] + struct.pack("!H", seq) + data[4:] if self.seq_delta else data

    def _pass_on(self, packets: list) -> None:
        """Held packets forwarded late, numbered after what the other party got meanwhile."""
        if not packets:
            return
        self.held_ts = set()
        other = self.side.other
        for packet in packets:
            self.last_seq = (self.last_seq + 1) & 0xFFFF
            self.seq_delta += 1
            if other is not None and other.deliver(packet[:2] + struct.pack("!H", self.last_seq) + packet[4:], False):
                self.side.stats.forwarded += 1

    def set_codes(self, codes: list, gap: float) -> None:
        if self.codes is not None:
            self._pass_on(self.codes.release())
        self.codes = KeySequence(codes, gap) if codes else None

    def clock(self, now: float) -> None:
        if self.codes is not None:
            self._pass_on(self.codes.due(now))

    def _mix(self, pcm: bytes, codec: dsp.Codec) -> bytes:
        spec, source, encoder = self.notice
        if encoder is None or encoder.name != codec.name:  # the first packet, or a codec change: start over
            self._close_notice()
            source, encoder = open_source(spec, codec.rate), dsp.Codec(codec.name)
            self.notice = [spec, source, encoder]
        samples = len(pcm) // 2
        try:
            extra = source.read(samples)
        except (OSError, EOFError, ValueError):
            extra = None
        if extra is None:
            self.end_notice()
            return encoder.encode(pcm)
        return encoder.encode(dsp.audioop.add(pcm, extra[:len(pcm)].ljust(len(pcm), b"\0"), 2))

    def _close_notice(self) -> None:
        _spec, source, encoder = self.notice
        if source is not None:
            source.close()
        if encoder is not None:
            encoder.close()

    def end_notice(self) -> None:
        if self.notice is not None:
            self._close_notice()
            self.notice = None
            self.engine.send({"ev": "notice_done", "side": self.side.id})

    def close(self) -> None:
        self.end_notice()
        for codec in self.codecs.values():
            codec.close()
        self.codecs.clear()


class Channel:
    """One party's audio waiting to be written, at the recording's rate."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.queue = bytearray()
        self.paused = False  # silence is written meanwhile
        self.states: dict[int, object] = {}

    def push(self, pcm: bytes, rate: int) -> None:
        if rate != self.rate:
            pcm, self.states[rate] = dsp.audioop.ratecv(pcm, 2, 1, rate, self.rate, self.states.get(rate))
        self.queue += pcm

    def take(self, samples: int) -> bytes:
        data = bytes(self.queue[:2 * samples])
        del self.queue[:2 * samples]
        extra = len(self.queue) - int(MAX_QUEUE * self.rate) * 2
        if extra > 0:
            del self.queue[:extra]
        return data.ljust(2 * samples, b"\0")


class StereoRecording:
    def __init__(self, engine, rid, a, b, path: str, rate: int, max_bytes: int) -> None:
        self.engine, self.id, self.a, self.b = engine, rid, a, b
        self.rate = rate
        self.max_bytes = max_bytes
        self.writer = StereoWavWriter(path, rate, sync_every=1.0, disk=engine.disk)
        self.left, self.right = Channel(rate), Channel(rate)
        self.started = time.monotonic()
        self.frames = 0

    def clock(self, now: float) -> str:
        """Write what is due; why the recording must stop ("max", "error: ..."), else ""."""
        due = int((now - self.started - HOLD) * self.rate) - self.frames
        if due <= 0:
            return ""
        left, right = self.left.take(due), self.right.take(due)
        frames = dsp.audioop.add(dsp.audioop.tostereo(left, 2, 1, 0), dsp.audioop.tostereo(right, 2, 0, 1), 2)
        self.frames += due
        if self.max_bytes and self.writer.size + len(frames) > self.max_bytes:
            frames = frames[:max(0, self.max_bytes - self.writer.size) & ~3]
            self.writer.write(frames)
            return "max"
        self.writer.write(frames)
        return ""


def listen(engine, side) -> Listen:
    if side.tap is None:
        side.tap = Listen(engine, side)
    return side.tap


def release(side) -> None:
    if side.tap is not None and side.tap.idle:
        side.tap.close()
        side.tap = None


def op(engine, name: str, side, msg: dict) -> None:
    if name == "keys":
        event_pt = msg.get("event_pt")
        listen(engine, side).event_pt = None if event_pt is None else int(event_pt)
        release(side)
    elif name == "key_codes":
        tap = listen(engine, side)
        if msg.get("event_pt") is not None:
            tap.event_pt = int(msg["event_pt"])
        tap.set_codes([str(c) for c in msg.get("codes") or ()][:16], min(10.0, max(0.2, float(msg.get("gap") or 2.0))))
        release(side)
    elif name == "tap_record":
        other = engine.sides.get(int(msg["other"]))
        stop(engine, side, "stopped")
        try:
            if other is None:
                raise OSError("the other side is gone")
            rec = StereoRecording(engine, msg.get("record"), side, other, str(msg["path"]),
                                  int(msg.get("rate") or 8000), int(msg.get("max_bytes") or 0))
        except OSError as exc:
            engine.send({"ev": "record_done", "side": side.id, "record": msg.get("record"), "reason": "error",
                         "seconds": 0, "path": str(msg["path"]), "error": str(exc)[:200]})
            return
        engine.recordings[side.id] = rec
        listen(engine, side).channel = rec.left
        listen(engine, other).channel = rec.right
    elif name == "tap_pause":
        rec = engine.recordings.get(side.id)
        if rec is not None:
            rec.left.paused = rec.right.paused = bool(msg.get("paused"))
    elif name == "tap_stop":
        stop(engine, side, "stopped")
    elif name == "notice":
        tap = listen(engine, side)
        tap.end_notice()
        open_source(msg, 8000).close()  # a bad request fails here, not on every packet
        tap.notice = [{k: msg[k] for k in ("file", "tone") if k in msg}, None, None]


def stop(engine, side, reason: str, error: str = "") -> None:
    """End the recording `side` leads (or takes part in, as the other party)."""
    rec = engine.recordings.pop(side.id, None)
    if rec is None:
        rec = next((r for r in engine.recordings.values() if r.b is side), None)
        if rec is None:
            return
        engine.recordings.pop(rec.a.id, None)
    for s in (rec.a, rec.b):
        if s.tap is not None:
            s.tap.channel = None
            release(s)
    failed = None
    try:
        rec.clock(time.monotonic() + HOLD)  # what was queued
    except OSError as exc:
        failed = exc

    def done(exc: OSError | None) -> None:  # once the file is complete (the disk thread's turn)
        exc = failed or exc
        why, text = ("error", error or str(exc)) if exc is not None else (reason, error)
        msg = {"ev": "record_done", "side": rec.a.id, "record": rec.id, "reason": why,
               "seconds": round(rec.writer.seconds, 3), "path": rec.writer.path}
        if text:
            msg["error"] = text[:200]
        engine.send(msg)
    rec.writer.close(done)


def clock(engine, now: float) -> None:
    for side in list(engine.sides.values()):
        if side.tap is not None and side.tap.held_ts:
            side.tap.clock(now)
    for rec in list(engine.recordings.values()):
        try:
            reason = rec.clock(now)
        except OSError as exc:  # a full disk, an I/O error: the recording ends, the call goes on
            stop(engine, rec.a, "error", str(exc))
            continue
        if reason:
            stop(engine, rec.a, reason)


def side_closed(engine, side) -> None:
    stop(engine, side, "hangup")
    if side.tap is not None:
        side.tap.close()
        side.tap = None
