"""Feature codes keyed during a bridged call by a party on one of the box's phones: park (pbx.feature_codes.
park: the other party goes to the first free slot, which is announced, as a transfer to the park code
would) and conference (then a third number: a three-party conference, threeway.py). record_call is not
one of them: the recording (recording/) sees every key and passes its code on to the other party, as it
always did.

The keys of the party that holds the feature are watched where they travel: RFC 4733 events in the media
engine (relay.Side.watch_codes, media/tap.py) and SIP INFO in call control (info()). The keys of a code
are swallowed, so the other party never hears them; a key that may begin a code waits until the next key
shows it does not (or for CODE_GAP seconds), every other key passes at once (media/keyseq.py)."""
from __future__ import annotations

import asyncio
import logging
import weakref

from ..endpoint import _info_key
from ..media.keyseq import KeySequence
from ..recording import _event_pt
from . import threeway

log = logging.getLogger("officebox.pbx.incall")
CODE_GAP = 2.0  # seconds between the keys of one code
_info_keys: "weakref.WeakKeyDictionary[object, KeySequence]" = weakref.WeakKeyDictionary()


def codes(core) -> list[str]:
    return [core.cfg.feature_codes.park, core.cfg.feature_codes.conference]


def watch(call) -> None:
    """A two-party call is bridged (or changed parties): watch the keys of the box's phones in it."""
    bridged = _bridged(call)
    for leg in call.legs:
        if leg.kind != "sip" or leg.side is None:
            continue
        if bridged and leg.extension is not None:
            leg.side.watch_codes(codes(call.core), _event_pt(leg.sdp), CODE_GAP,
                                 lambda code, leg=leg: keyed(call, leg, code))
        elif leg.side.on_code is not None:
            leg.side.watch_codes([], None, CODE_GAP, None)  # with an application now: its keys are its own


def _bridged(call) -> bool:
    return call.state == "connected" and len(call.legs) == 2 and all(p.kind == "sip" for p in call.legs)


def keyed(call, leg, code: str) -> None:
    """`leg`'s party keyed `code` during `call`."""
    if call.state != "connected" or leg not in call.legs or leg.ended or threeway.active(call) is not None:
        return
    if code == call.core.cfg.feature_codes.park:
        log.info("call %s: %s parks its call by keys", call.id, leg.label)
        call.core._spawn(call.hand_to_application(leg, code))
    elif code == call.core.cfg.feature_codes.conference:
        threeway.start(call, leg)


def info(call, leg, tx, req) -> bool:
    """A SIP INFO key of `leg` in a connected call: True when it was taken here (answered, held back
    or swallowed), False when call control passes it on as usual."""
    adding = threeway.active(call)
    if adding is not None and adding.takes_keys(leg):  # the third party's number
        key = _info_key(req.body, (req.get("Content-Type") or "").split(";")[0].strip().lower())
        leg.answer(tx, 200 if key else 400)
        if key:
            adding.key(key)
        return True
    if leg.extension is None or not _bridged(call):
        return False  # keys for an application are its own
    key = _info_key(req.body, (req.get("Content-Type") or "").split(";")[0].strip().lower())
    seq = _info_keys.get(leg)
    if seq is None or seq.codes != KeySequence(codes(call.core)).codes:
        seq = _info_keys[leg] = KeySequence(codes(call.core), CODE_GAP)
    if key is None:
        _pass_on(call, leg, seq.release())
        return False
    loop = asyncio.get_running_loop()
    passed, code = seq.press(key, req, loop.time())
    _pass_on(call, leg, [r for r in passed if r is not req])
    if any(r is req for r in passed):
        return False
    leg.answer(tx, 200)
    if code:
        keyed(call, leg, code)
    else:
        loop.call_later(CODE_GAP, lambda: _pass_on(call, leg, seq.due(loop.time())))
    return True


def _pass_on(call, leg, requests: list) -> None:
    """Held INFO keys go to the other party late (their answers were already given)."""
    other = call.other(leg)
    for req in requests:
        if other is None or other.ended or call.state != "connected":
            return
        if other.kind == "media":
            other.on_request(req)
        else:
            other.send(call.passed_request(other, req), lambda resp: None)
