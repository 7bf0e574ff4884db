"""Conference mixing in the engine: rooms of local endpoints (terminal.Terminal) whose decoded audio is
summed on the engine's 20 ms clock; each member is sent the sum of the others, never its own voice.

Rate: a room mixes at 16 kHz while one of its members speaks G.722 (wideband kept for them; G.711
members are resampled up on the way in and down on the way out), else at 8 kHz, where an all-G.711
room (the common case) resamples nothing. Mixing at 8 kHz with G.722 resampled down would throw away
what G.722 is for; mixing at 16 kHz always would cost two resamplings per G.711 member for nothing.

Timing: what a member sends is queued, a small jitter buffer: taking starts once PRIME frames are in
(40 ms, so a phone's usual jitter does not become holes) and starts again so after the queue ran dry;
at most JITTER frames are kept (older ones dropped: latency stays bounded). On each frame of the room's
clock one frame per member is taken, and a member with nothing to take (late, lost, on hold, muted)
adds silence for that frame: nobody waits for anybody. Sums are
made in 32-bit samples (audioop width 4) so the sum of the others is exact; a frame louder than 16 bits
is scaled down to fit (clipping protection) rather than clipped.

Control (the engine hands these ops over; the side must be a local endpoint already):
  {"op": "conf_join", "side", "room", "muted", "only_to"}   into `room` (made on first use), leaving any
                                                  other; `only_to` (a side id): only that member hears it
                                                  (a supervisor's whisper to an agent)
  {"op": "conf_mute", "side", "muted"}           a muted member hears the room, the room not it
  {"op": "conf_leave", "side"}                   out of its room (closing the side does it too)
  {"op": "conf_tone", "room", "tone": {"freqs", "seconds", "on", "off", "amplitude"}}
                                                  a tone every member hears (entry and exit tones)
  {"op": "conf_stats", "id"}                      -> {"re", "rooms": {room: [[side, muted, frames in,
                                                  missing, dropped], ...]}}
"""
from __future__ import annotations

import collections
import time
import warnings

try:
    from . import dsp
except ImportError:  # run as the engine script
    import dsp

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

OPS = ("conf_join", "conf_mute", "conf_leave", "conf_tone", "conf_stats")
PRIME = 2  # frames queued before a member's voice is taken (again after the queue ran dry)
JITTER = 6  # frames a member may have queued (120 ms); beyond, the oldest go
OUT_QUEUE = 3  # mixed frames waiting for the member's send clock
MAX_CATCH_UP = 10  # frames mixed at once after a stall (as terminal.py sends)
LIMIT = 32767
SCALE = 256  # 32-bit sums hold 16-bit samples times SCALE: exact, and room for 256 loud members
MAX_MEMBERS = 100  # per room


class Member:
    """A local endpoint's place in a room: what it said (queued), what it is to hear (queued)."""

    def __init__(self, term, room: "Room", muted: bool) -> None:
        self.term, self.room, self.muted = term, room, muted
        self.sid = 0  # its side's id (set on joining)
        self.only_to: int | None = None  # the one member who hears this one (None: all the others)
        self.heard: collections.deque[bytes] = collections.deque()
        self.out: collections.deque[bytes] = collections.deque()
        self.up = self.down = None  # ratecv states (codec rate <-> room rate)
        self.rates = (0, 0)
        self.primed = False
        self.frames_in = self.missing = self.dropped = 0

    def received(self, pcm: bytes) -> None:
        """Decoded audio the party sent (at its codec's rate)."""
        if self.muted:
            return
        self.heard.append(pcm)
        if len(self.heard) > JITTER:
            self.heard.popleft()
            self.dropped += 1

    def outgoing(self) -> bytes | None:
        """The next mixed frame for the party (at its codec's rate), None if none is ready."""
        return self.out.popleft() if self.out else None

    def _rates(self, room_rate: int) -> int:
        rate = self.term.codec.rate
        if self.rates != (rate, room_rate):
            self.rates, self.up, self.down = (rate, room_rate), None, None
        return rate

    def take(self, room_rate: int, samples: int) -> bytes | None:
        """This frame of its voice at the room's rate, as 32-bit samples; None: silence."""
        rate = self._rates(room_rate)
        if not self.primed and len(self.heard) >= PRIME:
            self.primed = True
        if not self.primed or not self.heard:
            self.primed = False
            if not self.muted:
                self.missing += 1
            return None
        pcm = self.heard.popleft()
        self.frames_in += 1
        if rate != room_rate:
            pcm, self.up = audioop.ratecv(pcm, 2, 1, rate, room_rate, self.up)
        pcm = _fit(pcm, 2 * samples)
        return _to32(pcm)

    def give(self, mixed32: bytes, room_rate: int) -> None:
        rate = self._rates(room_rate)
        pcm = _to16(mixed32)
        if rate != room_rate:
            pcm, self.down = audioop.ratecv(pcm, 2, 1, room_rate, rate, self.down)
            pcm = _fit(pcm, 2 * int(rate * dsp.FRAME))
        self.out.append(pcm)
        if len(self.out) > OUT_QUEUE:
            self.out.popleft()


class Room:
    def __init__(self, name: str, start: float) -> None:
        self.name = name
        self.members: dict[int, Member] = {}  # side id -> member
        self.start = start  # on the engine's 20 ms grid
        self.frames = 0
        self.tone = None  # a dsp.ToneSource at the room's rate
        self.tone_rate = 0

    @property
    def rate(self) -> int:
        return 16000 if any(m.term.codec.rate == 16000 for m in self.members.values()) else 8000

    def clock(self, now: float) -> None:
        due = int((now - self.start) / dsp.FRAME + 1e-6)
        if due - self.frames > MAX_CATCH_UP:
            self.frames = due - MAX_CATCH_UP
        while self.frames < due:
            self.frames += 1
            self.mix()

    def mix(self) -> None:
        """One frame: the sum of everybody (and the room's tone), then each member's share without itself."""
        rate = self.rate
        samples = int(rate * dsp.FRAME)
        silence32 = bytes(4 * samples)
        voices = [(m, m.take(rate, samples)) for m in self.members.values()]
        total = silence32
        for _, v in voices:
            if v is not None:
                total = audioop.add(total, v, 4)
        tone = self._tone(rate, samples)
        if tone is not None:
            total = audioop.add(total, _to32(tone), 4)
        private = [(m, v) for m, v in voices if v is not None and m.only_to is not None]
        for member, v in voices:
            own = total if v is None else audioop.add(total, audioop.mul(v, 4, -1.0), 4)
            for speaker, said in private:
                if speaker is not member and speaker.only_to != member.sid:
                    own = audioop.add(own, audioop.mul(said, 4, -1.0), 4)
            member.give(own, rate)

    def _tone(self, rate: int, samples: int) -> bytes | None:
        if self.tone is None:
            return None
        if self.tone_rate != rate:  # the room changed rate meanwhile: the rest of it is dropped
            self.tone = None
            return None
        data = self.tone.read(samples)
        if data is None:
            self.tone = None
            return None
        return _fit(data, 2 * samples)

    def play_tone(self, spec: dict) -> None:
        rate = self.rate
        self.tone_rate = rate
        self.tone = dsp.ToneSource(list(spec["freqs"])[:4], rate, min(float(spec.get("seconds", 0.3)), 10.0),
                                   int(spec.get("on", 0)), int(spec.get("off", 0)),
                                   min(float(spec.get("amplitude", 6000.0)), 16000.0))


class Mixer:
    """The engine's rooms; `clock` runs before the local endpoints send, so this frame's mix is ready."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.rooms: dict[str, Room] = {}
        self.members: dict[int, Member] = {}  # side id -> its membership

    def handle(self, op: str, msg: dict, side, term) -> None:
        if op == "conf_stats":
            self.engine.send({"re": msg["id"], "rooms": self.stats()})
            return
        if op == "conf_tone":
            room = self.rooms.get(str(msg["room"]))
            if room is not None:
                room.play_tone(dict(msg["tone"]))
            return
        if side is None:
            return  # closed meanwhile
        if op == "conf_leave":
            self.leave(side.id)
            return
        if term is None:
            raise ValueError(f"side {side.id} is no local endpoint")
        if op == "conf_join":
            self.join(side.id, term, str(msg["room"])[:64], bool(msg.get("muted")))
            if msg.get("only_to") is not None:
                self.members[side.id].only_to = int(msg["only_to"])
        elif op == "conf_mute":
            member = self.members.get(side.id)
            if member is not None:
                member.muted = bool(msg.get("muted"))
                member.heard.clear()

    def join(self, sid: int, term, name: str, muted: bool) -> None:
        self.leave(sid)
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, self.engine.frame_grid(time.monotonic()) - dsp.FRAME)
        if len(room.members) >= MAX_MEMBERS:
            raise ValueError(f"room {name} is full")
        member = Member(term, room, muted)
        member.sid = sid
        room.members[sid] = self.members[sid] = member
        term.member = member

    def leave(self, sid: int) -> None:
        member = self.members.pop(sid, None)
        if member is None:
            return
        member.term.member = None
        room = member.room
        room.members.pop(sid, None)
        if not room.members:
            self.rooms.pop(room.name, None)

    def clock(self, now: float) -> None:
        for room in list(self.rooms.values()):
            room.clock(now)

    def stats(self) -> dict:
        return {name: [[sid, m.muted, m.frames_in, m.missing, m.dropped] for sid, m in room.members.items()]
                for name, room in self.rooms.items()}


def _fit(pcm: bytes, size: int) -> bytes:
    """Exactly `size` bytes (ratecv may give a sample more or less)."""
    if len(pcm) == size:
        return pcm
    return pcm[:size] if len(pcm) > size else pcm + bytes(size - len(pcm))


def _to32(pcm: bytes) -> bytes:
    """16-bit samples as 32-bit ones times SCALE (lin2lin alone would shift them up by 16 bits)."""
    return audioop.mul(audioop.lin2lin(pcm, 2, 4), 4, SCALE / 65536)


def _to16(mixed32: bytes) -> bytes:
    """32-bit sums back to 16-bit samples; a frame that would clip is scaled down to fit."""
    peak = audioop.max(mixed32, 4)
    if peak > LIMIT * SCALE:
        mixed32 = audioop.mul(mixed32, 4, LIMIT * SCALE / peak)
    return audioop.lin2lin(audioop.mul(mixed32, 4, 65536 / SCALE), 4, 2)
