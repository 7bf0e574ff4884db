"""Call recording of bridged calls: both parties into one stereo WAV (left: the caller, right: the
callee; a player mixes them, and each voice stays separable), recorded in the media engine by a tap
on the two relay sides (media/tap.py) while the media is relayed untouched.

- Automatic (pbx.recording): calls of the listed extensions, to the listed ring groups, on the listed
  trunks are recorded from the moment they are answered.
- On demand: a party on one of the box's phones presses the record_call feature code (pbx.feature_codes,
  "*1") during the call, as RFC 4733 events (what phones send by default) or SIP INFO dtmf-relay; the
  first press starts (or resumes), the next pauses: one file per call, the paused time silent. The
  keys still reach the other party (DTMF passthrough is never cut).
- Notice (pbx.recording.notice): a beep or the spoken "rec-notice" prompt mixed into what each party
  sends, so the other hears it, at every start and resume.
- Stored in <state>/pbx/recordings/<name>.wav, written crash-safely; the CDR row names it
  (`recording`). Files older than retention_days, and the oldest beyond max_disk_mb, are deleted; their
  rows say why (`recording_removed`: retention, disk_limit). A recording stops at the disk limit.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

from ..endpoint import _info_key
from ..percore import PerCore
from .store import RecordingStore

log = logging.getLogger("officebox.pbx.recording")
KEY_GAP = 3.0  # seconds between the keys of one feature code
NOTICE_TONE = {"freqs": [1400], "seconds": 0.4, "amplitude": 6000}
_ids = itertools.count(1)


class Recorder:
    """What one PBX core's recordings share: their folder and limits."""

    def __init__(self, core) -> None:
        self.core = core
        self.store = RecordingStore(Path(core.bindings_path).parent / "recordings", core.cdr)
        self.writing: dict[str, object] = {}  # recording name -> its call, while that call lasts

    def busy(self) -> frozenset:
        """The recordings being written (never deleted by the housekeeping)."""
        for name, call in list(self.writing.items()):
            if call.state == "ended":
                del self.writing[name]
        return frozenset(self.writing)

    @property
    def cfg(self):
        return self.core.cfg.recording

    def automatic(self, call) -> bool:
        cfg = self.cfg
        parties = {p.extension for p in call.legs if getattr(p, "extension", None)}
        return bool(parties & set(cfg.extensions) or call.dialled in cfg.groups or
                    (call.record.trunk and call.record.trunk in cfg.trunks))

    async def housekeeping(self, every: float = 3600.0) -> None:
        """Retention and the disk limit, at start and then every `every` seconds (in a thread)."""
        while True:
            try:
                await asyncio.to_thread(self.store.sweep, self.cfg.retention_days, self.cfg.max_disk_mb, 0,
                                        self.busy())
            except OSError:
                log.exception("recordings housekeeping failed")
            await asyncio.sleep(every)


class CallRecording:
    """The recording of one call (Call.recording), its keys and its state."""

    def __init__(self, recorder: Recorder, call) -> None:
        self.recorder, self.call = recorder, call
        self.id = next(_ids)
        self.name = ""
        self.state = "off"  # off -> on <-> paused; "done" once the engine closed the file
        self.keys: dict[int, tuple[str, float]] = {}
        self.sides: tuple = ()

    # -- starting, pausing ------------------------------------------------------------------------
    async def toggle(self) -> None:
        if self.state == "on":
            self.pause()
        elif self.state == "paused":
            self.resume()
        elif self.state == "off":
            await self.start()

    async def start(self) -> None:
        call, store = self.call, self.recorder.store
        a, b = call.legs[0].side, call.legs[1].side
        if a is None or b is None:
            return
        self.state = "starting"
        cfg = self.recorder.cfg
        room = await asyncio.to_thread(store.room, cfg.retention_days, cfg.max_disk_mb, self.recorder.busy())
        if call.state != "connected" or room < store.MIN_ROOM:
            log.warning("call %s: not recorded (%s)", call.id, "no room left" if call.state == "connected"
                        else "the call ended")
            self.state = "off"
            return
        self.name = time.strftime("%Y%m%d-%H%M%S") + f"-{call.id[:16]}.wav"
        self.sides = (a, b)
        rate = 16000 if any(_codec(p.sdp) == "G722" for p in call.legs[:2]) else 8000
        a.tap("tap_record", other=b.id, record=self.id, path=str(store.path(self.name)), rate=rate, max_bytes=room)
        call.record.recording = self.name
        self.recorder.writing[self.name] = call
        self.state = "on"
        log.info("call %s: recording to %s", call.id, self.name)
        await self.notice()

    def pause(self) -> None:
        self.sides[0].tap("tap_pause", paused=True)
        self.state = "paused"

    def resume(self) -> None:
        self.sides[0].tap("tap_pause", paused=False)
        self.state = "on"
        self.recorder.core._spawn(self.notice())

    async def notice(self) -> None:
        """What both parties hear as the recording starts or resumes (pbx.recording.notice)."""
        kind = self.recorder.cfg.notice
        if kind == "none":
            return
        spec = {"tone": NOTICE_TONE}
        if kind == "prompt":
            from ..voicemail import for_core
            vm = for_core(self.recorder.core)
            lang = vm.language(self.call.legs[0].extension or self.call.legs[1].extension)
            try:  # made on first use: in a thread
                spec = {"file": str(await asyncio.to_thread(vm.prompts.prompt_path, "rec-notice", lang))}
            except Exception:  # no espeak-ng, a broken prompt: the beep instead
                log.exception("no recording notice prompt; beeping instead")
        if self.call.state == "connected":
            for side in self.sides:
                side.tap("notice", **spec)

    # -- keys from the parties --------------------------------------------------------------------
    def watch_keys(self) -> None:
        for party in self.call.legs[:2]:
            side = party.side
            if side is None or getattr(party, "kind", "") == "media":
                continue
            side.listener = lambda msg, leg=party: self.event(leg, msg)
            side.tap("keys", event_pt=_event_pt(party.sdp))

    def event(self, leg, msg: dict) -> None:
        if msg.get("ev") == "dtmf":
            self.key(leg, str(msg.get("key", "")))
        elif msg.get("ev") == "record_done":
            self.state = "done"
            if msg.get("reason") == "error":
                log.warning("call %s: recording stopped: %s", self.call.id, msg.get("error"))

    def key(self, leg, key: str) -> None:
        """A key a party pressed: the record_call feature code toggles the recording."""
        code = self.recorder.core.cfg.feature_codes.record_call
        if not self.recorder.cfg.on_demand or leg.extension is None or not key:
            return
        now = time.monotonic()
        typed, last = self.keys.get(id(leg), ("", 0.0))
        typed = (typed if now - last < KEY_GAP else "") + key
        if typed.endswith(code):
            typed = ""
            self.recorder.core._spawn(self.toggle())
        self.keys[id(leg)] = (typed[-len(code):], now)


def _codec(sdp) -> str:
    m = sdp.audio() if sdp is not None else None
    return next((m.codec(p) for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"), "") if m else ""


def _event_pt(sdp) -> int | None:
    m = sdp.audio() if sdp is not None else None
    return next((p for p in m.formats if m.codec(p) == "TELEPHONE-EVENT"), None) if m else None


for_core: PerCore[Recorder] = PerCore(Recorder)


# -- the hooks call control (calls.py) calls --------------------------------------------------------
def connected(call) -> None:
    """A two-party call is bridged: watch its keys, record it if the configuration says so."""
    if len(call.legs) != 2 or any(getattr(p, "kind", "") == "media" for p in call.legs):
        return
    recorder = for_core(call.core)
    rec = call.recording = CallRecording(recorder, call)
    rec.watch_keys()
    if recorder.automatic(call):
        call.core._spawn(rec.start())


def transferred(call) -> None:
    """A transfer changed the parties: the new call record links the recording going on, or one
    starts if the configuration records the new parties."""
    rec = call.recording
    if rec is None:
        connected(call)
        return
    if len(call.legs) != 2 or any(getattr(p, "kind", "") == "media" for p in call.legs):
        return
    rec.watch_keys()
    if rec.name:
        call.record.recording = rec.name
    elif rec.state == "off" and rec.recorder.automatic(call):
        call.core._spawn(rec.start())


def info_key(call, leg, body: bytes, content_type: str) -> None:
    """A key sent as SIP INFO (application/dtmf-relay "Signal=1", or application/dtmf "1")."""
    rec = getattr(call, "recording", None)
    key = _info_key(body, content_type.split(";")[0].strip().lower())
    if rec is not None and key:
        rec.key(leg, key)
