"""Transcoding between two relay sides whose parties speak different codecs (a G.722 phone picking up,
retrieving or being paged by a G.711 one). It stands where a side's relay partner would (`side.other`),
so strict source, latching, taps and the RTP timeout stay the sides'.

Per packet, no clock of its own: the audio of a packet is decoded, resampled (8 <-> 16 kHz) and encoded
in the other codec, and leaves at once with the same sequence number, timestamp and SSRC (G.711 and
G.722 share the 8000 Hz RTP clock, RFC 3551), so loss, jitter and reordering reach the far party as
they came and latency is a packet's work. Telephone-event packets keep their payload under the other
side's payload type (dropped if it has none); comfort noise is dropped; RTCP passes unchanged.

Control: {"op": "transcode", "side", "to", "codecs": [[codec, pt, event_pt], [codec, pt, event_pt]],
"oneway"}: the codecs of `side`'s party and of `to`'s; `oneway`: only `side` -> `to` (a page: what the
paged phone sends goes nowhere). A later "link" or "close" of either side ends it."""
from __future__ import annotations

import struct
import warnings

try:
    from . import dsp
except ImportError:  # run as the engine script
    import dsp

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


class Direction:
    """What one side's party sends, made into what the other side's party understands."""

    def __init__(self, source, dest, src: tuple, dst: tuple) -> None:
        self.source, self.dest = source, dest
        self.decoder, self.encoder = dsp.Codec(src[0]), dsp.Codec(dst[0])
        self.src_pt, self.src_event = src[1], src[2]
        self.dst_pt, self.dst_event = dst[1], dst[2]
        self.state = None  # ratecv's
        self.other = None  # never a side: engine.link's "former partner" check leaves it alone
        self.converted = self.dropped = 0

    def deliver(self, data: bytes, rtcp: bool) -> bool:
        if rtcp:
            return self.dest.deliver(data, True)
        if len(data) < 12 or data[0] >> 6 != 2:
            self.dropped += 1
            return False
        first = data[0]
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            if len(data) < start + 4:
                self.dropped += 1
                return False
            start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
        end = len(data) - (data[-1] if first & 0x20 else 0)
        if end <= start:
            self.dropped += 1
            return False
        pt, marker = data[1] & 0x7F, data[1] & 0x80
        payload = data[start:end]
        if pt == self.src_pt:
            try:
                pcm = self.decoder.decode(payload)
            except Exception:
                self.dropped += 1
                return False
            if self.decoder.rate != self.encoder.rate:
                pcm, self.state = audioop.ratecv(pcm, 2, 1, self.decoder.rate, self.encoder.rate, self.state)
            payload, out_pt = self.encoder.encode(pcm), self.dst_pt
        elif pt == self.src_event and self.src_event is not None and self.dst_event is not None:
            out_pt = self.dst_event
        else:
            self.dropped += 1  # comfort noise, events the other party cannot take, unknown types
            return False
        self.converted += 1
        return self.dest.deliver(bytes([0x80, marker | out_pt]) + data[2:12] + payload, False)

    def stop(self) -> None:
        if self.source.other is self:
            self.source.other = None
        if getattr(self.dest, "fed_by", None) is self:
            self.dest.fed_by = None
        self.decoder.close()
        self.encoder.close()


def link(engine, a, b, msg: dict) -> None:
    """`a` and `b` transcoded (after dropping whatever each was linked to, as a plain link does)."""
    if b is None or a is b:
        raise ValueError("transcode needs two sides")
    spec = [(str(c[0]), int(c[1]), None if c[2] is None else int(c[2])) for c in msg["codecs"][:2]]
    forward = Direction(a, b, spec[0], spec[1])  # raises CodecError before anything changes
    back = None if msg.get("oneway") else Direction(b, a, spec[1], spec[0])
    engine.link(a, b)
    a.other, b.fed_by = forward, forward
    b.other = back
    if back is not None:
        a.fed_by = back


def unlink(side) -> None:
    """`side` is linked anew or closed: its transcoding, both ways, ends."""
    for direction in (side.other, getattr(side, "fed_by", None)):
        if isinstance(direction, Direction):
            direction.stop()
