"""Music on hold between two phones: while one party holds the call, the relay side of the other is made
a local endpoint of the media engine that plays the holder's music-on-hold class (moh.py; the holder's
ExtensionSettings.moh_class, else "default") in a loop; on retrieve the two sides are linked again.

The hold offer is passed on to the held party as `sendonly` from a real address (the box sends it music,
whatever the holder sent: sendonly, inactive or 0.0.0.0), and the held party's answer goes back to the
holder in the direction its offer asks for (recvonly, or inactive)."""
from __future__ import annotations

import asyncio
import itertools
import logging

from .endpoint import voice_data_dir
from .moh import MohLibrary
from .sdp import Sdp, is_hold

log = logging.getLogger("officebox.pbx.hold")
_ids = itertools.count(1 << 20)  # play ids of their own (an application's channel counts from 1)


def offer_to_held(offer: Sdp) -> Sdp:
    """The holder's offer as the held party gets it: we send (music), it only listens."""
    out = offer.copy()
    out.direction = None
    if out.connection == "0.0.0.0":
        out.connection = "127.0.0.1"  # a placeholder: sdp_for() puts the relay's address in
    for m in out.media:
        if m.kind == "audio":
            m.direction = "sendonly"
            if m.connection == "0.0.0.0":
                m.connection = None
    return out


def answer_to_holder(offer: Sdp, answer: Sdp) -> Sdp:
    """The held party's answer as the holder gets it: inactive to an inactive offer, else recvonly."""
    out = answer.copy()
    m, theirs = out.audio(), offer.audio()
    if m is not None and theirs is not None:
        m.direction = "inactive" if theirs.direction == "inactive" else "recvonly"
    out.direction = None
    return out


class HoldMusic:
    """Music played to `held` (a SIP leg, its relay side made a local endpoint) while `holder` holds."""

    def __init__(self, call, holder, held) -> None:
        self.call, self.holder, self.held = call, holder, held
        self.side = held.side
        self.files: list = []
        self.turn = 0
        self.play_id = 0
        self.active = True
        self.task = asyncio.get_running_loop().create_task(self._start())

    async def _start(self) -> None:
        core = self.call.core
        settings = core.cfg.extensions.get(self.holder.extension or "")
        name = settings.moh_class if settings else "default"
        m = self.held.sdp.audio() if self.held.sdp else None
        pt = next((p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"), None) if m else None
        if pt is None or self.side is None:
            return
        rate = 16000 if m.codec(pt) == "G722" else 8000
        try:
            self.files = await asyncio.to_thread(MohLibrary(voice_data_dir(core)).class_files, core.cfg, name, rate)
        except Exception:
            log.exception("no music on hold for class %r: the held party hears silence", name)
            return
        if not self.active or self.side.closed or self.call.hold_music is not self \
                or self.holder not in self.call.legs or self.held not in self.call.legs:
            return  # retrieved or transferred while the files were looked up: the sides are linked anew
        event_pt = next((p for p in m.formats if m.codec(p) == "TELEPHONE-EVENT"), None)
        self.side.listener = self._engine_event
        self.side.terminate(m.codec(pt), pt, event_pt, send=True, inband=False)
        self._next()

    def _next(self) -> None:
        self.play_id = next(_ids)
        self.side.play(self.play_id, file=str(self.files[self.turn % len(self.files)]))
        self.turn += 1

    def _engine_event(self, msg: dict) -> None:
        if msg.get("ev") != "play_done" or msg.get("play") != self.play_id or not self.active:
            return
        if msg.get("reason") == "end" and not self.side.closed:
            self._next()  # the next file of the class, or the same track again
        elif msg.get("reason") == "error":
            log.warning("music on hold stopped: %s", msg.get("error"))

    def stop(self, relink: bool = True) -> None:
        """Retrieve: the two sides relay each other again (`relink`), or just stop (the call changed)."""
        self.active = False
        self.task.cancel()
        if self.side is not None and self.side.listener == self._engine_event:
            self.side.listener = None
        if relink and self.side is not None and not self.side.closed and self.holder.side is not None \
                and not self.holder.side.closed:
            self.call.core.relay.link(self.holder.side, self.side)


def update(call, current: HoldMusic | None, a, b) -> HoldMusic | None:
    """After an offer/answer between SIP legs `a` and `b`: music to the one whose partner alone holds."""
    holders = [p for p in (a, b) if p.sdp is not None and is_hold(p.sdp)]
    holder = holders[0] if len(holders) == 1 else None
    if current is not None and not (current.holder in call.legs and current.held in call.legs):
        current.stop(relink=False)  # a transfer changed the parties: their sides are linked anew already
        current = None
    if current is not None and (holder is None or current.holder is not holder or current.held.side is None
                                or current.held.side is not current.side):
        current.stop()
        current = None
    if holder is not None and current is None:
        held = b if holder is a else a
        if held.side is not None and holder.side is not None:
            current = HoldMusic(call, holder, held)
    return current
