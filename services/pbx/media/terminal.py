"""A local endpoint in the engine: the box itself is the party a side talks to. It stands where a
relay side's partner would (`side.other`), so strict source, latching and the RTP timeout stay the
side's; what the side accepts is decoded here, what the box says goes out through `side.deliver`.

Sending: one packet per 20 ms, paced from the engine's monotonic clock (packet n is due at start +
n * 20 ms and carries timestamp n * samples: no drift however long a file plays); silence between
plays, RFC 4733 events instead of audio while a key is sent, an RTCP sender report every 5 s.
Receiving: malformed packets and unknown payload types are dropped and counted; telephone-event and
in-band tones become DTMF events (at most `DTMF_RATE` keys a second, the rest counted); audio is
recorded through a small reordering buffer into a WAV file written crash-safely (dsp.WavWriter).
"""
from __future__ import annotations

import os
import random
import struct
import time

try:
    from . import dsp
except ImportError:  # run as the engine script
    import dsp

RTCP_EVERY = 5.0  # seconds between sender reports
MAX_CATCH_UP = 10  # frames sent at once after a stall; older ones are skipped (and counted late)
DTMF_RATE = 10  # keys a second accepted from one party (a flood beyond it is dropped and counted)
REORDER = 3  # packets held back to put a recording in order (60 ms)
MAX_GAP = 50  # lost packets filled with silence at most, per gap (longer gaps: a pause, not loss)
SILENCE_RMS = 200  # below this a recorded frame counts as silence (silence_stop)
NTP_EPOCH = 2208988800
_random = random.SystemRandom()


class Terminal:
    def __init__(self, engine, side, codec: str, pt: int, event_pt: int | None, send: bool,
                 inband: bool | None = None, start: float | None = None) -> None:
        self.engine, self.side = engine, side
        self.ssrc = _random.getrandbits(32)
        self.seq = _random.getrandbits(16)
        self.ts0 = _random.getrandbits(32)
        self.frames = 0  # frames sent (or due) since start: the timestamp and the schedule
        self.start = time.monotonic() if start is None else start  # the engine aligns all to one 20 ms grid
        self.sent = self.octets = self.late = 0
        self.malformed = self.unknown_pt = self.dtmf_count = self.dtmf_dropped = 0
        self.play = None  # (id, source)
        self.record = None  # Recording
        self.dtmf_out: list[str] = []  # keys still to send
        self.event = None  # (key, start timestamp, frames sent) of the key being sent
        self.last_rfc4733 = -10.0
        self.last_event_ts: int | None = None
        self.dtmf_times: list[float] = []
        self.detector = dsp.DtmfDetector()
        self.next_rtcp = self.start + 0.5
        self.codec = None
        self.member = None  # its place in a conference room (mixer.Member), if any
        self.reported: list = []
        self.rtcp_sent = 0
        self.configure(codec, pt, event_pt, send, inband)

    def configure(self, codec: str, pt: int, event_pt: int | None, send: bool, inband: bool | None = None) -> None:
        """`inband`: look for DTMF tones in the audio; None: only if the party negotiated no
        telephone-event (a phone offering events sends keys as events, and the detector costs CPU)."""
        if self.codec is None or self.codec.name != codec:
            new = dsp.Codec(codec)  # raises CodecError before anything changes
            if self.codec is not None:
                self.codec.close()
            self.codec = new
        self.pt, self.event_pt, self.sending = pt, event_pt, send
        self.inband = event_pt is None if inband is None else inband
        self.samples = int(self.codec.rate * dsp.FRAME)
        self.silence = b"\0" * (2 * self.samples)
        self.ts_step = 160  # RTP clock of G.711 and G.722 (RFC 3551: G.722 is clocked at 8000)

    # -- what the side received -------------------------------------------------------------------
    def deliver(self, data: bytes, rtcp: bool) -> bool:
        if rtcp:
            return True
        if len(data) < 12 or data[0] >> 6 != 2:
            self.malformed += 1
            return False
        first, second = data[0], data[1]
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension
            if len(data) < start + 4:
                self.malformed += 1
                return False
            start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
        end = len(data)
        if first & 0x20:
            end -= data[-1]
        if end <= start:
            self.malformed += 1
            return False
        pt = second & 0x7F
        seq, ts = struct.unpack_from("!HI", data, 2)
        payload = data[start:end]
        if pt == self.event_pt and self.event_pt is not None:
            self._telephone_event(payload, ts)
        elif pt == self.pt:
            self._audio(payload, seq, ts)
        elif pt == 13:  # comfort noise (RFC 3389): nothing to hear
            pass
        else:
            self.unknown_pt += 1
            return False
        return True

    def _telephone_event(self, payload: bytes, ts: int) -> None:
        if len(payload) < 4:
            self.malformed += 1
            return
        self.last_rfc4733 = time.monotonic()
        event = payload[0]
        if ts == self.last_event_ts or event >= len(dsp.EVENT_KEYS):
            return  # the same key again (updates, the three end packets) or no key (flash, tones)
        self.last_event_ts = ts
        self._key(dsp.EVENT_KEYS[event], "rfc4733")

    def _key(self, key: str, source: str) -> None:
        now = time.monotonic()
        self.dtmf_times = [t for t in self.dtmf_times if now - t < 1.0]
        if len(self.dtmf_times) >= DTMF_RATE:
            self.dtmf_dropped += 1
            return
        self.dtmf_times.append(now)
        self.dtmf_count += 1
        self.engine.send({"ev": "dtmf", "side": self.side.id, "key": key, "source": source})

    def _audio(self, payload: bytes, seq: int, ts: int) -> None:
        try:
            pcm = self.codec.decode(payload)
        except Exception:  # a codec library refusing a payload: the packet is malformed
            self.malformed += 1
            return
        if self.inband and time.monotonic() - self.last_rfc4733 > 2.0:  # events sent: no tones to find
            narrow = pcm if self.codec.rate == 8000 else dsp.audioop.ratecv(pcm, 2, 1, 16000, 8000, None)[0]
            key = self.detector.frame(narrow)
            if key:
                self._key(key, "inband")
        if self.member is not None:
            self.member.received(pcm)
        if self.record is not None:
            try:
                self.record.packet(seq, ts, pcm)
            except OSError as exc:  # a full disk, an I/O error: the recording ends, the call goes on
                self.stop_record("error", str(exc))

    # -- plays, recordings, keys to send ----------------------------------------------------------
    def start_play(self, pid, source) -> None:
        self.stop_play("stopped")
        self.play = (pid, source)

    def stop_play(self, reason: str, error: str = "") -> None:
        if self.play is None:
            return
        pid, source = self.play
        self.play = None
        source.close()
        msg = {"ev": "play_done", "side": self.side.id, "play": pid, "reason": reason}
        if error:
            msg["error"] = error
        self.engine.send(msg)

    def start_record(self, rid, path: str, max_seconds: float, silence_stop: float) -> None:
        self.stop_record("stopped")
        writer = dsp.WavWriter(path, self.codec.rate, sync_every=0.5, disk=self.engine.disk)
        self.record = Recording(rid, writer, self.samples, max_seconds, silence_stop)

    def stop_record(self, reason: str, error: str = "", then=None) -> None:
        """The recording ends; its record_done once the file is complete, then `then()`."""
        rec, self.record = self.record, None
        if rec is None:
            if then is not None:
                then()
            return
        side = self.side.id

        def done(exc: OSError | None) -> None:  # once the file is complete (the disk thread's turn)
            why, text = ("error", error or str(exc)) if exc is not None else (reason, error)
            msg = {"ev": "record_done", "side": side, "record": rec.id, "reason": why,
                   "seconds": round(rec.writer.seconds, 3), "path": rec.writer.path}
            if text:
                msg["error"] = text[:200]
            self.engine.send(msg)
            if then is not None:
                then()
        rec.finish(done)

    def send_keys(self, keys: str) -> None:
        self.dtmf_out.extend(k for k in keys.upper() if k in dsp.EVENT_KEYS)
        del self.dtmf_out[64:]

    # -- the clock --------------------------------------------------------------------------------
    def clock(self, now: float) -> None:
        due = int((now - self.start) / dsp.FRAME + 1e-6)
        if due - self.frames > MAX_CATCH_UP:
            self.late += due - self.frames - MAX_CATCH_UP
            self.frames = due - MAX_CATCH_UP
        while self.frames < due:
            self.frames += 1
            self._frame()
        if self.record is not None:
            try:
                reason = self.record.check()
            except OSError as exc:
                self.stop_record("error", str(exc))
            else:
                if reason:
                    self.stop_record(reason)
        if now >= self.next_rtcp:
            self.next_rtcp = now + RTCP_EVERY
            self._sender_report()

    def _frame(self) -> None:
        pcm = (self.member.outgoing() if self.member is not None else None) or self.silence  # a room's mix
        if self.play is not None:
            try:
                data = self.play[1].read(self.samples)
            except (OSError, EOFError, ValueError) as exc:
                self.stop_play("error", str(exc)[:200])
                data = self.silence
            if data is None:
                self.stop_play("end")
            else:
                pcm = data
        ts = (self.ts0 + (self.frames - 1) * self.ts_step) & 0xFFFFFFFF
        if self.event is None and self.dtmf_out and self.event_pt is not None:
            self.event = [self.dtmf_out.pop(0), ts, 0]
        if self.event is not None:
            self._event_frame()
            return
        if self.sending:
            self._send(self.pt, ts, self.codec.encode(pcm), marker=self.sent == 0)

    def _event_frame(self) -> None:
        """RFC 4733: 100 ms of the key (5 packets, one timestamp, growing duration), 3 end packets,
        then 60 ms of audio before the next key."""
        key, ts, n = self.event
        self.event[2] = n + 1
        if n < 8 and self.sending:
            end = n >= 5
            duration = min(n + 1, 5) * self.ts_step
            payload = struct.pack("!BBH", dsp.EVENT_KEYS.index(key), (0x80 if end else 0) | 10, duration)
            self._send(self.event_pt, ts, payload, marker=n == 0)
        elif n >= 11:
            self.event = None

    def _send(self, pt: int, ts: int, payload: bytes, marker: bool = False) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq, ts, self.ssrc)
        if self.side.deliver(header + payload, False):
            self.sent += 1
            self.octets += len(payload)

    def _sender_report(self) -> None:
        """RTCP SR (RFC 3550 6.4.1) with a report block on what we receive, and an SDES CNAME."""
        if not self.sent or self.side.peer_rtcp is None:
            return
        wall = time.time() + NTP_EPOCH
        ntp_hi, ntp_lo = int(wall), int((wall % 1) * (1 << 32)) & 0xFFFFFFFF
        ts = (self.ts0 + self.frames * self.ts_step) & 0xFFFFFFFF
        st = self.side.stats
        blocks = b""
        if st.ssrc is not None:
            expected = st.cycles + st.max_seq - st.base + 1
            lost = max(0, min(expected - st.received, 0x7FFFFF))
            jitter = int(st.jitter) & 0xFFFFFFFF
            blocks = struct.pack("!IIIIII", st.ssrc, lost, (st.cycles + st.max_seq) & 0xFFFFFFFF, jitter, 0, 0)
        count = len(blocks) // 24
        sr = struct.pack("!BBHIIIIII", 0x80 | count, 200, 6 + 6 * count, self.ssrc, ntp_hi, ntp_lo, ts,
                         self.sent & 0xFFFFFFFF, self.octets & 0xFFFFFFFF) + blocks
        cname = f"officebox-{self.ssrc:08x}".encode()
        item = bytes([1, len(cname)]) + cname + b"\0"
        item += b"\0" * (-(4 + len(item)) % 4)
        sdes = struct.pack("!BBHI", 0x81, 202, (4 + len(item)) // 4, self.ssrc) + item
        if self.side.deliver(sr + sdes, True):
            self.rtcp_sent += 1

    def figures(self) -> list:
        return [self.sent, self.late, self.malformed, self.unknown_pt, self.dtmf_count, self.dtmf_dropped,
                self.rtcp_sent]

    def close(self, then=None) -> None:
        """Play and recording end ("hangup"); `then()` after the last of their events."""
        self.stop_play("hangup")
        self.stop_record("hangup", then=then)
        self.codec.close()


class Recording:
    """Decoded audio into a WAV file in sequence order: a packet is held until REORDER later ones came
    (or 60 ms passed), lost packets become silence, duplicates and packets too late are dropped."""

    def __init__(self, rid, writer: dsp.WavWriter, samples: int, max_seconds: float, silence_stop: float) -> None:
        self.id, self.writer, self.samples = rid, writer, samples
        self.max_seconds, self.silence_stop = max_seconds, silence_stop
        self.held: dict[int, bytes] = {}
        self.next_seq: int | None = None
        self.quiet = 0.0  # seconds of silence at the end so far
        self.heard = False
        self.started = self.arrived = time.monotonic()

    def packet(self, seq: int, ts: int, pcm: bytes) -> None:
        if self.next_seq is None:
            self.next_seq = seq
        if (seq - self.next_seq) & 0xFFFF >= 0x8000:
            return  # older than what was written: too late
        self.held[seq] = pcm
        self.arrived = time.monotonic()
        while len(self.held) > REORDER:
            self._write_next()

    def _write_next(self) -> None:
        seq = self.next_seq
        if seq not in self.held:
            gap = min((s - seq) & 0xFFFF for s in self.held)
            if gap <= MAX_GAP:
                self.writer.write(b"\0" * (2 * self.samples * gap))
            seq = (seq + gap) & 0xFFFF
        pcm = self.held.pop(seq)
        room = int(self.max_seconds * self.writer.rate) * 2 - self.writer.size if self.max_seconds else len(pcm)
        self.writer.write(pcm[:max(0, room)])
        self.next_seq = (seq + 1) & 0xFFFF
        frame = len(pcm) / (2 * self.writer.rate)
        if dsp.audioop.rms(pcm, 2) < SILENCE_RMS:
            self.quiet += frame
        else:
            self.quiet, self.heard = 0.0, True

    def check(self) -> str:
        """Why the recording should stop now ("max", "silence"), or ""."""
        if self.held and time.monotonic() - self.arrived > REORDER * dsp.FRAME:
            while self.held:  # nothing came for a while: what is held will not be reordered any more
                self._write_next()
        if self.max_seconds and (self.writer.seconds >= self.max_seconds or
                                 time.monotonic() - self.started > self.max_seconds + 1):
            return "max"
        if self.silence_stop and self.heard and self.quiet >= self.silence_stop:
            return "silence"
        return ""

    def finish(self, done) -> None:
        """What is held written, then the file closed: done(error or None)."""
        failed = None
        try:
            while self.held:
                self._write_next()
        except OSError as exc:
            failed = exc
        self.held.clear()
        self.writer.close(lambda exc: done(failed or exc))


def open_source(msg: dict, rate: int):
    """What a play request names: {"file": path} or {"tone": {"freqs", "seconds", "on", "off"}}."""
    if "file" in msg:
        path = str(msg["file"])
        if not os.path.isfile(path):
            raise dsp.CodecError(f"no such file: {path}")
        return dsp.WavSource(path, rate)
    tone = msg["tone"]
    if "key" in tone:
        return dsp.dtmf_tone(str(tone["key"]), rate, float(tone.get("seconds", 0.1)))
    return dsp.ToneSource(list(tone["freqs"]), rate, min(float(tone.get("seconds", 1.0)), 3600.0),
                          int(tone.get("on", 0)), int(tone.get("off", 0)),
                          float(tone.get("amplitude", 8000.0)))
