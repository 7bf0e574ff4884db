"""Joining two parties whose phones share no codec (a G.722-only phone picking up, retrieving or being
paged by a G.711-only one): the media engine transcodes between their relay sides (media/transcode.py)
instead of passing packets through. Parties that speak the same codec are linked as before."""
from __future__ import annotations

from ..media import dsp
from ..sdp import Media, Sdp

Spec = tuple[str, int, "int | None"]  # (codec, payload type, telephone-event's payload type)


def first_codec(m: Media | None, within: list[str] | None = None) -> Spec | None:
    """The first audio codec of `m` (of `within`, if given) and its telephone-event, or None."""
    if m is None:
        return None
    event = next((p for p in m.formats if m.codec(p) == "TELEPHONE-EVENT"), None)
    for pt in m.formats:
        name = m.codec(pt)
        if name != "TELEPHONE-EVENT" and (within is None or name in within):
            return name, pt, event
    return None


def terminable(m: Media | None, allowed: list[str]) -> Spec | None:
    """The first codec of `m` the engine can decode and encode (and the configuration allows)."""
    usable = [c for c in dsp.codecs() if c in {a.upper() for a in allowed}]
    return first_codec(m, usable)


def spec_of(sdp: Sdp | None) -> Spec | None:
    """What a party speaks, from the SDP that settled it (an answer, or ours to its offer)."""
    return first_codec(sdp.audio() if sdp is not None else None)


def keep(sdp: Sdp, spec: Spec) -> Sdp:
    """`sdp` (a copy) with only `spec`'s codec and telephone-event, sendrecv."""
    out = sdp.copy()
    m = out.audio()
    m.formats = [p for p in m.formats if p == spec[1] or (spec[2] is not None and p == spec[2])]
    m.direction = "sendrecv"
    return out


def connect(relay, a_side, a: Spec, b_side, b: Spec, oneway: bool = False) -> bool:
    """Media between the two sides: relayed if both speak alike, else transcoded (True)."""
    if a == b:
        if not oneway:
            relay.link(a_side, b_side)
        return False
    relay.transcode(a_side, b_side, a, b, oneway=oneway)
    return True


def speaks(leg) -> Spec | None:
    """The codec a SIP leg's party settled on: its answer to our offer, or our answer to its offer."""
    if leg.uas and getattr(leg, "sent_sdp", b""):
        try:
            return spec_of(Sdp.parse(leg.sent_sdp))
        except ValueError:
            pass
    return spec_of(leg.sdp)


def handed_over(local, leg) -> None:
    """An application (`local`) passed its caller to `leg` and the call relays them: transcode if the
    caller speaks another codec than `leg` (a parked G.711 call retrieved by a G.722 phone)."""
    side, caller_speaks, leg_speaks = local.media, spec_of(local.sdp), speaks(leg)
    if side is None or leg.side is None or caller_speaks is None or leg_speaks is None or side.closed:
        return
    if caller_speaks != leg_speaks:
        connect(leg.call.core.relay, side, caller_speaks, leg.side, leg_speaks)
