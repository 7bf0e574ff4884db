"""The parties of a call. A call (calls.Call, the bridge) holds endpoints: SIP legs (leg.Leg, UAS or
UAC, including legs the box originates itself: PbxCore.originate) and media endpoints of the box
(MediaEndpoint: the party an application speaks as, the `Channel` of apps.py, whose docstring is the
application API's reference).

What call control needs of every endpoint:
  label, extension, trunk   who it is (CDRs, the call list, device events)
  side                      the media engine side carrying its media (services/pbx/relay.Side), or None
  sdp                       the media description it sends (its offer/answer)
  ended                     it has left the call
  bye()                     leave the call (a SIP leg sends BYE; a media endpoint stops its application)
A media endpoint also takes the in-dialog INFO/MESSAGE its partner sends (on_request -> SIP status):
DTMF as application/dtmf-relay or application/dtmf becomes a key, anything else waits in `inbox`.

A media endpoint has no relay side of its own: answering makes the caller's relay side a local endpoint
of the engine (media/terminal.py), which plays, records and hears keys there.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .media import dsp
from .prompts import PromptLibrary
from .sdp import Sdp, is_hold, terminated_answer

if TYPE_CHECKING:
    from .calls import Call
    from .sip.message import Request

INBOX = 32  # in-dialog requests an application has not read yet; more are refused (486)
KEYS = 32  # keys pressed and not read yet; older ones are dropped beyond it
EVENTS = 32  # channel events not read yet; older ones are dropped beyond it
STOP_WAIT = 2.0  # seconds the engine has to confirm a stopped recording
DTMF_INFO = ("application/dtmf-relay", "application/dtmf")
VALID_KEYS = "0123456789*#ABCD"


class ChannelGone(Exception):
    """The caller left (BYE, CANCEL, lost media) or the call was hung up: raised in whatever channel
    coroutine waits. `recording`: the path of a recording cut short by it (the file keeps what was said)."""

    def __init__(self, recording: str | None = None) -> None:
        super().__init__("the caller has left" + (f"; recording kept in {recording}" if recording else ""))
        self.recording = recording


class MediaError(RuntimeError):
    """A play or recording the media engine could not do (unreadable file, full disk...)."""


@dataclass(frozen=True)
class Tone:
    """A tone to play: the sum of `freqs` (Hz), `on`/`off` ms cadence (0: steady), `seconds` in all."""
    freqs: tuple[float, ...]
    seconds: float
    on: int = 0
    off: int = 0
    amplitude: float = 8000.0


BEEP = Tone((1000.0,), 0.25)
RINGBACK = Tone((440.0, 480.0), 30.0, 2000, 4000)
BUSY = Tone((480.0, 620.0), 30.0, 500, 500)


@dataclass
class Recording:
    """What record() made: `reason` max, silence, key (then `key`), stopped, error."""
    path: str
    seconds: float
    reason: str
    key: str | None = None


@dataclass
class ChannelEvent:
    """Something the caller did besides keys: "hold", "resume", "reinvite" (media changed), "info"
    or "message" (`request`: a non-DTMF INFO or a MESSAGE, also kept in `inbox`)."""
    kind: str
    request: object = field(default=None, repr=False)


class Endpoint:
    kind = "sip"
    label = ""
    extension: str | None = None
    trunk = None
    side = None
    sdp = None
    ended = False
    uas = False

    def bye(self) -> None:
        raise NotImplementedError


class MediaEndpoint(Endpoint):
    """The box answering a call as an application (apps.py): the `Channel` an application gets."""
    kind = "media"
    key = None  # no SIP dialog of its own

    def __init__(self, call: "Call", destination: str) -> None:
        self.call = call
        self.destination = destination
        self.name = destination.partition(":")[2]
        self.label = destination
        self.inbox: asyncio.Queue[Request] = asyncio.Queue(INBOX)
        self.held = False
        self.inband: bool | None = None  # DTMF tone detection: None = only if the caller has no telephone-event
        self.media = None  # the caller's relay side, once answered: the engine's local endpoint
        self.keys_dropped = 0
        self._gone = asyncio.Event()
        self._keys: collections.deque[str] = collections.deque()
        self._key_ready = asyncio.Event()
        self._events: collections.deque[ChannelEvent] = collections.deque(maxlen=EVENTS)
        self._event_ready = asyncio.Event()
        self._pending: dict[tuple[str, int], asyncio.Future] = {}
        self._ids = itertools.count(1)

    @property
    def caller(self):
        """The SIP leg this endpoint talks to."""
        return self.call.other(self) or self.call.a

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    @property
    def figures(self) -> dict:
        """The engine's figures for this channel: received (packets, lost, jitter...) and local
        (sent, late, malformed, unknown_pt, dtmf, dtmf_dropped, rtcp_sent)."""
        side = self.media
        if side is None:
            return {}
        return {"received": side.stats.summary(), "local": dict(side.local or {})}

    # -- answering and the media ------------------------------------------------------------------
    async def answer(self) -> bool:
        """Answer the call (200 OK, media through the engine); False if the caller left or it was answered."""
        if not self.call.answer_locally(self):
            return False
        self.media_changed()
        return True

    def media_changed(self, offer=None) -> None:
        """Our answer (self.sdp) changed: terminate the caller's side in its codec; `offer`: the
        caller's new offer (a re-INVITE), delivered as a hold / resume / reinvite event."""
        side, m = self.caller.side, self.sdp.audio() if self.sdp else None
        if side is None or m is None:
            return
        self.media = side
        side.listener = self._engine_event
        pt = m.formats[0]
        event_pt = next((p for p in m.formats if m.codec(p) == "TELEPHONE-EVENT"), None)
        side.terminate(m.codec(pt), pt, event_pt, send=m.direction in ("sendrecv", "sendonly"), inband=self.inband)
        if offer is not None:
            held = is_hold(offer)
            kind = "reinvite" if held == self.held else ("hold" if held else "resume")
            self.held = held
            self._event(ChannelEvent(kind))

    def caller_answered(self, answer: Sdp) -> None:
        """A delayed-offer caller answered our offer in its ACK: speak the codec it chose."""
        try:
            self.sdp = local_answer(answer, self.call.core.cfg.codecs)
        except ValueError:
            return  # nothing we can speak: the caller hears silence until it hangs up or re-INVITEs
        if self.media is not None:
            self.media_changed()

    def detect_inband(self, on: bool | None = True) -> None:
        """Look for DTMF tones in the caller's audio even though it negotiated telephone-event (a phone
        set to send tones), or stop (False), or back to the default (None: only without events)."""
        self.inband = on
        if self.media is not None and not self.gone:
            self.media_changed()

    def echo(self) -> None:
        """Send the caller's audio back to it (the engine reflects the caller's side)."""
        side = self.caller.side
        if side is not None:
            self.call.core.relay.link(side, side)

    def hangup(self) -> None:
        self.call.local_hangup(self)

    async def bridge(self, target: str, timeout: float = 30.0) -> bool:
        """Call `target` (an extension, group or number, as the dial plan knows it) for the caller and,
        once answered, hand the caller over to it: True, and this channel has left the call (the
        application should return); False if nobody answered within `timeout` (the caller stays here)."""
        self._media()
        call = self.call
        leg = await call.core.originate(target, caller=call.caller, caller_name=call.caller_name,
                                        authority=call.authority, timeout=timeout)
        if leg is None:
            return False
        if self.gone:
            leg.call.media_down("caller_left")  # ends the new call: BYE to the one who answered
            raise ChannelGone()
        self.call.hand_over(self, leg)
        return True

    async def wait_gone(self, timeout: float) -> bool:
        """Wait until the call ends (True) or `timeout` seconds pass (False)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), timeout)
        return self._gone.is_set()

    def bye(self) -> None:
        self.ended = True
        self._gone.set()
        if self.media is not None and not self._recording():
            self.media.listener = None  # a recording's listener stays for its record_done

    def _recording(self) -> bool:
        return any(what == "record" and not fut.done() for (what, _), fut in self._pending.items())

    # -- playing, hearing keys, recording ---------------------------------------------------------
    async def play(self, what: "str | os.PathLike | Tone", interruptible: bool = True) -> str | None:
        """Play a WAV file (16-bit mono PCM, 8 or 16 kHz) or a Tone to its end; with `interruptible`,
        a key pressed before or during it stops it and is returned (and not kept for collect())."""
        side = self._media()
        if interruptible and self._keys:
            return self._keys.popleft()
        pid, fut = self._expect("play")
        if isinstance(what, Tone):
            side.play(pid, tone={"freqs": list(what.freqs), "seconds": what.seconds, "on": what.on,
                                 "off": what.off, "amplitude": what.amplitude})
        else:
            side.play(pid, file=os.path.abspath(os.fspath(what)))
        finished = False
        try:
            while True:
                if interruptible and not self._keys:
                    self._key_ready.clear()
                waits = [fut] + ([self._key_ready] if interruptible else [])
                await self._until(*waits)
                if fut.done():
                    finished = True
                    msg = fut.result()
                    if msg["reason"] == "error":
                        raise MediaError(msg.get("error", "cannot play"))
                    return None
                if self._keys:
                    return self._keys.popleft()
        finally:
            self._pending.pop(("play", pid), None)
            if not finished and not self.gone:
                side.stop("play")

    # -- saying numbers, digits, dates (the prompt library) ----------------------------------------
    def language(self) -> str:
        """The caller hears the called user's language if the box has prompts in it, else the box's."""
        user = self.call.core.users.get(self.name)
        return self.prompts().language(user.language if user else None)

    def prompts(self) -> PromptLibrary:
        core = self.call.core
        return PromptLibrary(voice_data_dir(core), core.cfg.prompt_language)

    async def say_number(self, n: int, lang: str | None = None, interruptible: bool = True,
                         counting: bool = False, feminine: bool = False) -> str | None:
        """Say `n` (prompts.numbers rules: `counting` before a measure word, `feminine` in French);
        interrupted by a key like play() (returned)."""
        files = await asyncio.to_thread(self.prompts().say_number, n, lang or self.language(), self._rate(),
                                        counting, feminine)
        return await self.play_files(files, interruptible)

    async def say_digits(self, digits: str, lang: str | None = None, interruptible: bool = True) -> str | None:
        """Say each digit of `digits` (also * and #)."""
        files = await asyncio.to_thread(self.prompts().say_digits, digits, lang or self.language(), self._rate())
        return await self.play_files(files, interruptible)

    async def say_datetime(self, when: datetime.datetime, lang: str | None = None, date: bool = True,
                           interruptible: bool = True) -> str | None:
        """Say `when` as numbers: the day and month (English: month, day) unless `date` is False, then the
        hour and the minutes (24-hour clock; "o'clock" minutes are not said)."""
        lang = lang or self.language()
        numbers = ([when.month, when.day] if lang == "en" else [when.day, when.month]) if date else []
        numbers += [when.hour] + ([when.minute] if when.minute else [])

        def files() -> list[Path]:
            library = self.prompts()
            return [f for n in numbers for f in library.say_number(n, lang, self._rate())]
        return await self.play_files(await asyncio.to_thread(files), interruptible)

    async def play_files(self, files: list[Path], interruptible: bool = True) -> str | None:
        """Play files one after the other; a key (with `interruptible`) stops them and is returned."""
        for path in files:
            key = await self.play(path, interruptible)
            if key is not None:
                return key
        return None

    def _rate(self) -> int:
        """16 kHz prompts for a G.722 caller, 8 kHz otherwise."""
        m = self.sdp.audio() if self.sdp else None
        return 16000 if m is not None and m.formats and m.codec(m.formats[0]) == "G722" else 8000

    async def collect(self, max_digits: int, timeout: float = 5.0, terminator: str = "#",
                      first_timeout: float | None = None) -> str:
        """Up to `max_digits` keys; ends early on a key of `terminator` (not returned) or when no key
        comes for `timeout` seconds (`first_timeout` for the first one). Keys pressed during an
        earlier play count (type-ahead)."""
        digits = ""
        while len(digits) < max_digits:
            key = await self.next_key(first_timeout if not digits and first_timeout is not None else timeout)
            if key is None or key in terminator:
                break
            digits += key
        return digits

    async def next_key(self, timeout: float | None = None) -> str | None:
        """The next key pressed (RFC 4733, SIP INFO or in-band tone), or None after `timeout` seconds."""
        self._media()
        while not self._keys:
            self._key_ready.clear()
            if not await self._until(self._key_ready, timeout=timeout):
                return None
        return self._keys.popleft()

    def flush_keys(self) -> None:
        """Forget keys pressed and not read yet."""
        self._keys.clear()

    async def record(self, path: "str | os.PathLike", max_seconds: float = 120.0, silence_stop: float = 0.0,
                     beep: bool = True, terminators: str = "#") -> Recording:
        """Record what the caller says into a WAV file (16-bit mono PCM, 8 kHz; 16 kHz with G.722)
        after a beep, until a key of `terminators` (reason "key"), `max_seconds` ("max") or
        `silence_stop` seconds of silence after speech ("silence", 0: never). Written crash-safely:
        a hang-up raises ChannelGone(recording=path) and the file keeps everything said until then."""
        side = self._media()
        path = os.path.abspath(os.fspath(path))
        if beep:
            await self.play(BEEP, interruptible=False)
        self.flush_keys()
        rid, fut = self._expect("record")
        side.record(rid, path, max_seconds, silence_stop)
        key = None
        try:
            while not fut.done():
                try:
                    await self._until(fut, self._key_ready)
                except ChannelGone:
                    await self._finished(fut)
                    raise ChannelGone(recording=path) from None
                while self._keys and not fut.done():
                    pressed = self._keys.popleft()
                    if pressed in terminators:
                        key = pressed
                        side.stop("record")
                        await self._until(fut, timeout=STOP_WAIT)
                        break
                self._key_ready.clear()
            if not fut.done():
                raise MediaError("the media engine did not finish the recording")
            msg = fut.result()
        finally:
            self._pending.pop(("record", rid), None)
        if msg["reason"] == "error":
            raise MediaError(msg.get("error", "cannot record"))
        return Recording(msg["path"], float(msg["seconds"]), "key" if key else msg["reason"], key)

    async def _finished(self, fut: asyncio.Future) -> None:
        """After a hang-up: until the engine has closed the recording's file (its record_done), at most
        STOP_WAIT s, so the file's header then counts every frame said."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), STOP_WAIT)
        if self.media is not None:
            self.media.listener = None

    def send_dtmf(self, keys: str) -> None:
        """Send keys to the caller as RFC 4733 events (100 ms each)."""
        self._media().send_dtmf(keys)

    async def next_event(self, timeout: float | None = None) -> ChannelEvent | None:
        """The next ChannelEvent (hold, resume, reinvite, info, message), or None after `timeout`."""
        while not self._events:
            self._event_ready.clear()
            if not await self._until(self._event_ready, timeout=timeout):
                return None
        return self._events.popleft()

    # -- in-dialog requests and engine events -----------------------------------------------------
    def on_request(self, req: "Request") -> int:
        ctype = (req.get("Content-Type") or "").split(";")[0].strip().lower()
        if req.method == "INFO" and ctype in DTMF_INFO:
            key = _info_key(req.body, ctype)
            if key is None:
                return 400
            self._key(key)
            return 200
        try:
            self.inbox.put_nowait(req)
        except asyncio.QueueFull:
            return 486
        self._event(ChannelEvent("info" if req.method == "INFO" else "message", req))
        return 200

    def _engine_event(self, msg: dict) -> None:
        ev = msg["ev"]
        if ev == "dtmf":
            self._key(str(msg["key"]))
            return
        what, ident = {"play_done": ("play", "play"), "record_done": ("record", "record")}.get(ev, (None, None))
        fut = self._pending.get((what, msg.get(ident))) if what else None
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _key(self, key: str) -> None:
        if len(self._keys) >= KEYS:
            self._keys.popleft()
            self.keys_dropped += 1
        self._keys.append(key)
        self._key_ready.set()

    def _event(self, event: ChannelEvent) -> None:
        self._events.append(event)
        self._event_ready.set()

    # -- helpers ----------------------------------------------------------------------------------
    def _media(self):
        if self.gone:
            raise ChannelGone()
        if self.media is None:
            raise RuntimeError("answer() the channel first")
        return self.media

    def _expect(self, what: str) -> tuple[int, asyncio.Future]:
        ident = next(self._ids)
        fut = self._pending[(what, ident)] = asyncio.get_running_loop().create_future()
        return ident, fut

    async def _until(self, *waits, timeout: float | None = None) -> bool:
        """Wait for the first of `waits` (futures or asyncio.Events): True, or False after `timeout`;
        ChannelGone as soon as the caller leaves."""
        tasks = [asyncio.ensure_future(w.wait()) if isinstance(w, asyncio.Event) else w for w in waits]
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            done, _ = await asyncio.wait([*tasks, gone], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            for task, w in zip(tasks, waits, strict=True):
                if task is not w:
                    task.cancel()
        if self.gone:
            raise ChannelGone()
        return bool(done)


def voice_data_dir(core) -> Path:
    """The box's data folder (prompts and hold music live under its cache/ and state/): the PBX's state
    folder is <data>/state/pbx, where its registrations are kept."""
    return Path(core.bindings_path).parents[2]


def local_answer(offer: Sdp, allowed: list[str]) -> Sdp:
    """The SDP answer of a media endpoint: what the engine can terminate (PCMU, PCMA, G.722 with
    libspandsp) and telephone-event."""
    return terminated_answer(offer, allowed, dsp.codecs())


def _info_key(body: bytes, ctype: str) -> str | None:
    """The key of an INFO: "Signal=5\\r\\nDuration=160" (dtmf-relay) or "5" (application/dtmf)."""
    text = body.decode("ascii", "replace")
    if ctype == "application/dtmf-relay":
        fields = dict(line.partition("=")[::2] for line in text.splitlines())
        text = next((v for k, v in fields.items() if k.strip().lower() == "signal"), "")
    text = text.strip().upper()
    if text == "10":
        return "*"
    if text == "11":
        return "#"
    return text if len(text) == 1 and text in VALID_KEYS else None
