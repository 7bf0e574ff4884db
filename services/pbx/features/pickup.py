"""Call pickup: a phone takes a call ringing another one. Group pickup (the pickup code: the oldest call
ringing a colleague of the picker's pickup groups: its ring groups with `pickup` on and its extension's
`pickup_group`), directed pickup (the directed pickup code + an extension) and an INVITE with Replaces
(RFC 3891) naming the ringing dialog, as desk phones' BLF keys send it. The picker's INVITE never
becomes a call of its own: its leg answers the ringing call (Call._ring takes it like a callee's 200),
the phones still ringing get CANCEL with "call completed elsewhere", the call record names the picker
as the callee with end_reason "picked_up"."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..blf import may_watch
from ..config import ExtensionSettings
from ..sdp import Sdp, SdpError, filter_offer
from . import bridging

if TYPE_CHECKING:
    from ..calls import Call
    from ..leg import Leg

log = logging.getLogger("officebox.pbx.pickup")
PICKED_UP = object()  # the event Call._ring gets: (picker's leg, PICKED_UP)
TAKE_WAIT = 2.0  # seconds the ringing call has to take the picker before it gets 480


def pickup_groups(cfg, ext: str) -> set[str]:
    """The extensions whose ringing calls `ext` may pick up with the group code (itself excluded)."""
    mine = {m for g in cfg.groups if g.pickup and ext in g.members for m in g.members}
    own = (cfg.extensions.get(ext) or ExtensionSettings()).pickup_group
    if own:
        mine |= {e for e, s in cfg.extensions.items() if s.pickup_group == own}
    mine.discard(ext)
    return mine


def ringing_legs(core, extensions: set[str]) -> list["Leg"]:
    """Legs ringing one of `extensions` now (alerted, unanswered, of a call still being set up), oldest call first."""
    found = [leg for leg in list(core.dialogs.values())
             if not leg.uas and leg.extension in extensions and leg.alerted and not leg.confirmed
             and not leg.abandoned and not leg.ended and leg.call.state == "setup" and not leg.call.cancelled]
    return sorted(found, key=lambda leg: leg.call.started)


def replaces_of(req) -> tuple[str, str, str] | None:
    value = req.get("Replaces")
    if not value:
        return None
    fields = [f.strip() for f in unquote(value).split(";")]
    params = dict(f.partition("=")[::2] for f in fields[1:])
    return fields[0], params.get("to-tag", ""), params.get("from-tag", "")


def wanted(call: "Call") -> tuple[str, str] | None:
    """("replaces" | "group" | "directed", target) when the call is a pickup request, else None."""
    req = call.tx.request
    if replaces_of(req) is not None:
        return "replaces", ""
    codes = call.core.cfg.feature_codes
    if call.dialled == codes.pickup:
        return "group", ""
    prefix = codes.directed_pickup
    if call.dialled.startswith(prefix) and call.dialled[len(prefix):].isdigit():
        return "directed", call.dialled[len(prefix):]
    return None


def find_target(call: "Call", kind: str, target: str) -> tuple["Leg | None", int]:
    """The ringing leg the picker takes over, or (None, the status to refuse with)."""
    core, picker = call.core, call.a.extension
    cfg = core.cfg
    if kind == "replaces":
        leg = core.find_dialog(*replaces_of(call.tx.request))
        if leg is None or leg.uas or leg.confirmed or leg.call.state != "setup":
            return None, 481
        if not may_watch(cfg, picker, leg.extension or ""):
            return None, 403
        legs = [leg] if leg in ringing_legs(core, {leg.extension}) else []
    elif kind == "directed":
        if target not in core.users:
            return None, 404
        if target != picker and not may_watch(cfg, picker, target):
            return None, 403
        legs = ringing_legs(core, {target})
    else:
        legs = ringing_legs(core, pickup_groups(cfg, picker))
    legs = [leg for leg in legs if leg.call.a is None or leg.call.a.extension != picker]
    return (legs[0], 200) if legs else (None, 480)


async def intercept(call: "Call") -> bool:
    """Handle `call` if it is a pickup request (True: it is over as a call of its own)."""
    what = wanted(call) if call.a is not None and call.a.extension else None  # phones of the box only
    if what is None:
        return False
    picker = call.a
    core = call.core
    leg, status = find_target(call, *what)
    try:
        offer = filter_offer(Sdp.parse(call.tx.request.body), core.cfg.codecs) if call.tx.request.body else None
    except SdpError:
        offer, status, leg = None, 488, None
    if leg is not None and offer is None:
        leg, status = None, 488  # an offerless pickup is not supported: the phones we know all offer
    if leg is None:
        log.info("pickup by %s (%s %s) refused: %s", picker.label, *what, status)
        picker.answer(call.tx, status)
        call.finish("failed", status)
        return True
    ringing = leg.call
    _detach(call)
    picker.call = ringing
    picker.sdp = offer
    picker.pickup_tx = call.tx
    ringing.events.put_nowait((picker, PICKED_UP))
    asyncio.get_running_loop().call_later(TAKE_WAIT, _not_taken, core, picker)
    return True


def _detach(call: "Call") -> None:
    """The picker's own call disappears without a record: its leg goes to the ringing call."""
    call.state = "ended"
    call.core.calls.pop(call.id, None)
    call.core.calls_by_tx.pop(id(call.tx), None)
    call.done.set()


def _not_taken(core, picker: "Leg") -> None:
    if not picker.confirmed and not picker.ended:
        picker.answer(picker.pickup_tx, 480)
        picker.ended = True
        core.forget(picker)


def taken(call: "Call", picker: "Leg"):
    """Call._ring got PICKED_UP: answer the picker and return the Outcome that makes the picker the callee;
    None if it cannot be taken (then refused). A codec both offered is relayed as is; without one, each
    phone gets its own first codec and the engine transcodes between them (bridging.py)."""
    from ..calls import Outcome
    if picker.ended or picker.confirmed or call.state != "setup" or call.cancelled or call.offer is None:
        return None
    mine, theirs = call.offer.audio(), picker.sdp.audio()
    names = {theirs.codec(p): p for p in theirs.formats}
    chosen = next((p for p in mine.formats if mine.codec(p) != "TELEPHONE-EVENT" and mine.codec(p) in names), None)
    to_caller = None
    if chosen is not None:
        codec = mine.codec(chosen)
        to_picker = call.offer.copy()
        _keep(to_picker, codec)
        answer = picker.sdp.copy()
        _keep(answer, codec)
    else:
        codecs = call.core.cfg.codecs
        caller_speaks, picker_speaks = bridging.terminable(mine, codecs), bridging.terminable(theirs, codecs)
        if caller_speaks is None or picker_speaks is None or call.a is None or call.a.sdp is None:
            picker.answer(picker.pickup_tx, 488)
            picker.ended = True
            call.core.forget(picker)
            return None
        to_picker = answer = bridging.keep(picker.sdp, picker_speaks)
        to_caller = bridging.keep(call.offer, caller_speaks)
        bridging.connect(call.core.relay, call.a.side, caller_speaks, call.ring_side, picker_speaks)
    picker.side = call.ring_side
    tx = picker.pickup_tx
    picker.answer(tx, 200, call.sdp_for(picker, to_picker), **call.session_headers(picker, tx.request))
    call.record.end_reason = "picked_up"
    log.info("call %s picked up by %s%s", call.id, picker.label, " (transcoded)" if to_caller else "")
    return Outcome("answered", 200, picker, answer, to_caller=to_caller)


def _keep(sdp: Sdp, codec: str) -> None:
    m = sdp.audio()
    m.formats = [p for p in m.formats if m.codec(p) in (codec, "TELEPHONE-EVENT")]
    m.direction = "sendrecv"
