"""Three-party conference keyed during a call: a party on one of the box's phones, in a bridged two-party
call, keys pbx.feature_codes.conference (*3 by default; dialled as a call of its own the same code joins
one's held calls, conference/app.py), then the third number ended by # (or a pause of DIGIT_GAP
seconds). Meanwhile the other party hears music on hold (the keyer's class), the keyer a dial tone,
then ringback. Answered: the three are members of an ad-hoc room of the engine's mixer (each hears the
other two; the conferences' live view shows the room, mute and remove work there). Not answered, busy,
cancelled (* while dialling or ringing) or nothing keyed: the two talk again.

The calls stay as they are: the original call (two SIP legs) and the box's call to the third party (one
leg, PbxCore.originate); only their relay sides go into the room. When one of the three leaves, the
other two are one plain call again: the original call's sides are linked again, or the third party
joins the original call in the place of the one who left (Call.join)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

from ..endpoint import RINGBACK, local_answer
from ..holdmusic import HoldMusic
from ..sdp import Sdp, SdpError, filter_offer

log = logging.getLogger("officebox.pbx.threeway")
FIRST_DIGIT = 10.0  # seconds the keyer has for the first digit of the third number
DIGIT_GAP = 3.0  # seconds after a digit that end the number
MAX_DIGITS = 24
RING = 30.0  # seconds the third party rings
DIAL_TONE = {"freqs": [350, 440], "seconds": 30.0, "on": 0, "off": 0, "amplitude": 5000}
RINGING_TONE = {"freqs": list(RINGBACK.freqs), "seconds": RING, "on": RINGBACK.on, "off": RINGBACK.off,
                "amplitude": 5000}
PLAY_ID = 1 << 23  # play ids of their own (applications count from 1, hold music from 1 << 20)
_by_call: "weakref.WeakKeyDictionary[object, ThreeWay]" = weakref.WeakKeyDictionary()


def active(call) -> "ThreeWay | None":
    """The three-party conference `call` is part of (being set up or joined), if any."""
    return _by_call.get(call)


def start(call, keyer) -> None:
    """`keyer` keyed the conference code in `call`, a bridged call of two SIP legs."""
    held = call.other(keyer)
    if call in _by_call or held is None or call.hold_music is not None or call.renegotiating \
            or keyer.side is None or held.side is None or keyer.sdp is None or held.sdp is None:
        log.info("call %s: no three-party conference now (on hold, changing or already one)", call.id)
        return
    tw = _by_call[call] = ThreeWay(call, keyer, held)
    log.info("call %s: %s adds a third party", call.id, keyer.label)
    call.core._spawn(tw.run())


def conference(call, keyer, held, third) -> "ThreeWay":
    """Call control (CTI ConferenceCall): `keyer` and `held`, the two bridged SIP legs of `call`, and `third`,
    a leg alone in its call (the keyer left it), join one ad-hoc room as if the keyer had dialled the third."""
    if call in _by_call or third.call in _by_call or keyer.side is None or held.side is None or third.side is None:
        raise ValueError("a call of a three-party conference already")
    tw = _by_call[call] = ThreeWay(call, keyer, held)
    third.side.stop("play")  # the music it heard while held
    tw._join(third)
    return tw


def reoffer(call, leg, tx, req) -> bool:
    """A re-INVITE or UPDATE with an offer from a party of a conference (or of one being set up): the box
    answers it as the local endpoint it talks to (hold, resume, refresh), nobody else is asked; True when
    answered here."""
    tw = _by_call.get(call)
    if tw is None or tw.state == "over" or leg not in (tw.keyer, tw.held, tw.third) or not req.body:
        return False
    codecs = call.core.cfg.codecs
    try:
        offer = filter_offer(Sdp.parse(req.body), codecs)
        answer = local_answer(offer, codecs)
    except SdpError:
        leg.answer(tx, 488)
        return True
    leg.sdp = offer
    call._set_peer(leg, offer, relatch=True)
    leg.answer(tx, 200, call.sdp_for(leg, answer), **call.session_headers(leg, req))
    m = answer.audio()
    tw._terminate(leg, m.formats[0], send=(m.direction or answer.direction) not in ("recvonly", "inactive"))
    return True


def leaving(call, leg) -> bool:
    """`leg` hung up in `call`: True when the call goes on without it (the other two of a conference)."""
    tw = _by_call.get(call)
    return tw.left(leg) if tw is not None else False


class _Member:
    """What conference.Conferences keeps of a participant: its leg, its call and its relay side."""

    def __init__(self, leg) -> None:
        self.caller, self.call, self.media = leg, leg.call, leg.side


class ThreeWay:
    def __init__(self, call, keyer, held) -> None:
        self.call, self.keyer, self.held = call, keyer, held
        self.third = None  # the third party's leg, once it answered
        self.ringing = None  # the box's call to the third party
        self.state = "dialling"  # -> ringing -> joined -> over
        self.keys: asyncio.Queue[str] = asyncio.Queue(MAX_DIGITS)
        self.music: HoldMusic | None = None
        self.listeners = {keyer: keyer.side.listener, held: held.side.listener}  # given back afterwards
        self.room = None
        self.members: dict = {}  # leg -> conference.Participant
        self.over = asyncio.Event()

    def _live(self) -> bool:
        return self.call.state == "connected" and not self.keyer.ended and not self.held.ended \
            and self.keyer in self.call.legs and self.held in self.call.legs

    # -- setting up: the number, the ringing ------------------------------------------------------
    async def run(self) -> None:
        call, keyer = self.call, self.keyer
        try:
            number = await self._number()
            leg = None
            if number in (keyer.extension, self.held.extension):
                number = ""  # one of the two already in the call: nobody new to add
            if number and self._live():
                self.state = "ringing"
                log.info("call %s: ringing %s for a three-party conference", call.id, number)
                keyer.side.play(PLAY_ID + 1, tone=RINGING_TONE)
                leg = await call.core.originate(
                    number, caller=keyer.label, caller_name=self._name(keyer), timeout=RING,
                    authority=call.core.permission_of_extension(keyer.extension or ""), started=self._started)
                if leg is not None and not self._live():
                    leg.call.media_down("caller_left")  # the two left while it rang: BYE to who answered
                    leg = None
            if leg is not None:
                self._join(leg)
                return
        except Exception:
            log.exception("call %s: the three-party conference failed", call.id)
            if self.third is not None:  # joining failed half way: the third party goes, the two talk again
                _by_call.pop(self.third.call, None)
                self.third.call.media_down("three_way_failed")
        self._resume()

    def _started(self, other_call) -> None:
        self.ringing = other_call

    async def _number(self) -> str:
        """The digits the keyer keys ("" when cancelled or nothing came); the held party hears music."""
        call, keyer = self.call, self.keyer
        self.music = call.hold_music = HoldMusic(call, keyer, self.held)
        self._terminate(keyer, call._codec_in_use())
        keyer.side.listener = self._engine_event
        keyer.side.play(PLAY_ID, tone=DIAL_TONE)
        digits = ""
        while len(digits) < MAX_DIGITS and self._live():
            key = await self._next_key(DIGIT_GAP if digits else FIRST_DIGIT)
            if key is None or key == "#":
                break
            if key == "*":
                return ""
            if not digits:
                keyer.side.stop("play")
            digits += key
        return digits

    async def _next_key(self, timeout: float) -> str | None:
        get = asyncio.ensure_future(self.keys.get())
        ended = asyncio.ensure_future(self.call.done.wait())
        try:
            await asyncio.wait([get, ended], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            get.cancel()
        return get.result() if get.done() and not get.cancelled() else None

    def key(self, key: str) -> None:
        """A key of the keyer (RFC 4733 through its side, or SIP INFO) while it sets the conference up."""
        if self.state == "dialling":
            with contextlib.suppress(asyncio.QueueFull):
                self.keys.put_nowait(key)
        elif self.state == "ringing" and key == "*" and self.ringing is not None:
            self.ringing.cancel_ringing()

    def takes_keys(self, leg) -> bool:
        return leg is self.keyer and self.state in ("dialling", "ringing")

    def _engine_event(self, msg: dict) -> None:
        if msg.get("ev") == "dtmf" and msg.get("source") != "relay":  # the local endpoint's, not the tap's
            self.key(str(msg.get("key", "")))

    def _terminate(self, leg, pt: int | None, send: bool = True) -> None:
        """`leg`'s side becomes a local endpoint of the engine in the codec it talks (`pt` if it has it)."""
        m = leg.sdp.audio()
        voice = [p for p in m.formats if m.codec(p) != "TELEPHONE-EVENT"]
        pt = pt if pt in voice else voice[0]
        event_pt = next((p for p in m.formats if m.codec(p) == "TELEPHONE-EVENT"), None)
        leg.side.terminate(m.codec(pt), pt, event_pt, send=send, inband=False)

    def _name(self, leg) -> str:
        user = self.call.core.users.get(leg.extension or "")
        return user.full_name if user else ""

    def _resume(self) -> None:
        """Not answered (or cancelled): the two talk again."""
        self.state = "over"
        _by_call.pop(self.call, None)
        self._stop_music()
        if self._live():
            log.info("call %s: no third party, the call goes on", self.call.id)
            self._relink(self.keyer, self.held)

    def _stop_music(self) -> None:
        if self.music is not None:
            self.music.stop(relink=False)
            if self.call.hold_music is self.music:
                self.call.hold_music = None
            self.music = None

    # -- joined: three in a room ------------------------------------------------------------------
    def _join(self, third) -> None:
        from ..conference import ENTRY_TONE, for_core
        call = self.call
        self.third, self.state = third, "joined"
        _by_call[third.call] = self
        self._stop_music()
        confs = for_core(call.core)
        self.room = confs.adhoc({call.id, third.call.id})
        pt = call._codec_in_use()
        for leg in (self.keyer, self.held):
            leg.side.stop("play")  # dial or ringing tone, music on hold
        for leg in (self.keyer, self.held, third):
            leg.side.listener = None
            self._terminate(leg, pt if leg is not third else None)
            leg.side.relay.send({"op": "conf_join", "side": leg.side.id, "room": self.room.name, "muted": False})
            self.members[leg] = confs.add(self.room, _Member(leg))
        confs.tone(self.room, ENTRY_TONE)
        log.info("call %s: %s, %s and %s in %s", call.id, self.keyer.label, self.held.label, third.label,
                 self.room.name)
        call.core._spawn(self._watch())

    async def _watch(self) -> None:
        """Until one leaves: a call ended some other way (lost media...) or the admin removed someone."""
        call, other = self.call, self.third.call
        waits = [asyncio.ensure_future(call.done.wait()), asyncio.ensure_future(other.done.wait())]
        waits += [asyncio.ensure_future(p.removed.wait()) for p in self.members.values()]
        waits.append(asyncio.ensure_future(self.over.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self.state != "joined":
            return  # someone hung up: left() did it
        removed = next((leg for leg, p in self.members.items() if p.removed.is_set()), None)
        if call.state == "ended":
            self._dissolve()
            other.media_down("caller_left")  # the two of the first call are gone: the third too
        elif other.state == "ended":
            self._dissolve()
            self._relink(self.keyer, self.held)
        elif removed is not None:
            removed.bye()
            if not self.left(removed):
                removed.call.finish("answered", 200)

    def left(self, leg) -> bool:
        """`leg` hung up (or was removed): True when its call goes on with the two others."""
        if self.state in ("dialling", "ringing"):
            if self.ringing is not None and self.ringing.state == "setup":
                self.ringing.cancel_ringing()
            return False  # one of the two first parties: the call ends as it would have
        if self.state != "joined" or leg not in self.members:
            return False
        self._dissolve()
        call = self.call
        if leg is self.third:
            self._relink(self.keyer, self.held)
            return False  # the box's call to it ends as usual
        stays = self.held if leg is self.keyer else self.keyer
        log.info("call %s: %s left the conference; %s and %s go on", call.id, leg.label, stays.label,
                 self.third.label)
        call.legs.remove(leg)
        call.core.events.device(leg.extension, call, "cleared", initiator=leg is call.a, peer=stays.label)
        if leg.side is not None:
            leg.side.close()
        stays.side.listener = self.listeners.get(stays)
        call.join(self.third)  # links the two sides (out of the room) and watches their keys
        return True

    def _dissolve(self) -> None:
        from ..conference import for_core
        self.state = "over"
        self.over.set()
        for call in (self.call, self.third.call if self.third else None):
            if call is not None and _by_call.get(call) is self:
                del _by_call[call]
        confs = for_core(self.call.core)
        for p in self.members.values():
            confs.remove(self.room, p)

    def _relink(self, a, b) -> None:
        """`a` and `b` of the first call relay each other again (no longer local endpoints)."""
        from . import incall
        call = self.call
        if a.side is None or b.side is None or a.side.closed or b.side.closed:
            return
        call.core.relay.link(a.side, b.side)
        for leg in (a, b):
            leg.side.listener = self.listeners.get(leg)
        call._watch_media()
        incall.watch(call)
