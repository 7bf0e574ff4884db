"""Call events on the appliance bus (appliance/bus.py): what the live calls page, CDRs, BLF (the
`dialog` event package) and later CTI/ACD read instead of polling call snapshots.

Topics (pbx.call, pbx.device and pbx.media retained, so a late subscriber seeds itself from
`bus.retained(topic)`):
  pbx.call    key = call id; data = {"event", "call", "state", "caller", "caller_name", "dialled",
              "callee", "direction", "trunk", "devices", "started", "answered", "on_hold", "time",
              "seq", "reason", "holders" (extensions holding the call), "disposition" (answered, busy,
              missed, failed, transferred: once cleared)}; events: initiated, alerting, connected, held,
              retrieved, transferred, cleared. After "cleared" the key is dropped (data None).
  pbx.device  key = extension; data = {"event", "device", "call", "dialog" (trying|early|confirmed|
              terminated, RFC 4235), "direction" (initiator|recipient), "peer", "calls" (the device's
              call ids), "time", "seq"}. One event per state change of one device in one call.
  pbx.cdr     key = call id; data = a finished call record (cdr.CallRecord's fields), not retained:
              the CDR store of the PBX writes what it receives here; other consumers may listen too.
  pbx.media   key = call id; data = {"addresses": [...]}: every address a party of the call may send media
              from, as the PBX learnt them (SDP connection addresses, signalling sources: what strict
              source latches on). They only grow while the call lives (a party joining it by attended
              transfer brings its own); dropped (None) when it is cleared. The firewall opens the WAN
              RTP range to these addresses only.
  pbx.queued  key = the caller's call id; data = {"event" (queued: the caller waits in an ACD queue;
              answered: an agent took them, "agent"; left: they hung up or overflowed, "outcome" abandoned,
              timeout, no_agents, full...), "call", "queue" (its name), "number" (its number: CTI's queue
              device), "caller", "agent", "outcome", "waiting" (callers in that queue now), "time", "seq"};
              not retained (acd/__init__.py publishes it).
`seq` grows by one per event of the PBX (both topics), so consumers can order them.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from typing import TYPE_CHECKING

from appliance.bus import Bus

from .sdp import is_hold

if TYPE_CHECKING:
    from .calls import Call
    from .cdr import CallRecord

CALL_TOPIC = "pbx.call"
DEVICE_TOPIC = "pbx.device"
CDR_TOPIC = "pbx.cdr"
MEDIA_TOPIC = "pbx.media"
QUEUED_TOPIC = "pbx.queued"
MEDIA_ADDRESSES = 16  # per call: a party re-offering new addresses again and again cannot grow it further
DIALOG_STATE = {"initiated": "trying", "alerting": "early", "connected": "confirmed", "held": "confirmed",
                "retrieved": "confirmed", "transferred": "confirmed", "cleared": "terminated"}


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def holders(call: "Call") -> list[str]:
    """The extensions holding `call`: by their own SDP, or by the box (hold music started for them)."""
    found = [p.extension for p in call.legs if p.extension and p.sdp is not None and is_hold(p.sdp)]
    music = call.hold_music
    if music is not None and music.active and music.holder.extension and music.holder.extension not in found:
        found.append(music.holder.extension)
    return found


class CallEvents:
    def __init__(self, bus: Bus | None = None) -> None:
        self.bus = bus or Bus()
        self._seq = itertools.count(1)
        self._device_calls: dict[str, set[str]] = {}  # extension -> ids of the calls it takes part in
        self._media: dict[str, set[str]] = {}  # call id -> the media addresses published for it

    def call(self, call: "Call", event: str, reason: str = "") -> None:
        data = call.summary()  # a new dict each time: completed in place
        data.update(event=event, time=time.time(), seq=next(self._seq), reason=reason, holders=holders(call),
                    disposition=call.record.disposition if event == "cleared" else "")
        self.bus.publish(CALL_TOPIC, call.id, data, retain=True)
        if event == "transferred":  # a party may come from another call (attended transfer)
            for party in call.legs:
                m = party.sdp.audio() if party.kind == "sip" and party.sdp is not None else None
                if m is not None:
                    self.media_peer(call, party.sdp.address(m), party.flow[1])
        if event == "cleared":
            self.bus.publish(CALL_TOPIC, call.id, None, retain=True)
            if self._media.pop(call.id, None) is not None:
                self.bus.publish(MEDIA_TOPIC, call.id, None, retain=True)

    def media_peer(self, call: "Call", *addresses: str | None) -> None:
        """A party of `call` may send media from `addresses` (its SDP address, its signalling source)."""
        known = self._media.setdefault(call.id, set())
        new = {a for a in addresses if a and a not in ("0.0.0.0", "::")} - known
        if new and len(known) < MEDIA_ADDRESSES:
            known |= new
            self.bus.publish(MEDIA_TOPIC, call.id, {"addresses": sorted(known)}, retain=True)

    def device(self, device: str | None, call: "Call", event: str, *, initiator: bool, peer: str = "") -> None:
        if not device:
            return
        calls = self._device_calls.setdefault(device, set())
        if event == "cleared":
            calls.discard(call.id)
        else:
            calls.add(call.id)
        data = {"event": event, "device": device, "call": call.id, "dialog": DIALOG_STATE[event],
                "direction": "initiator" if initiator else "recipient", "peer": peer,
                "calls": sorted(calls), "time": time.time(), "seq": next(self._seq)}
        if not calls:
            self._device_calls.pop(device, None)
        self.bus.publish(DEVICE_TOPIC, device, data, retain=True)

    def queue_turn(self, call_id: str, event: str, **data) -> None:
        """A caller's turn in an ACD queue: queued, answered (by data["agent"]) or left (data["outcome"])."""
        self.bus.publish(QUEUED_TOPIC, call_id, {"event": event, "call": call_id, **data, "time": time.time(),
                                                  "seq": next(self._seq)})

    def record(self, rec: "CallRecord") -> None:
        # its fields are all scalars: a shallow copy is asdict()'s result, without its deep copying
        self.bus.publish(CDR_TOPIC, rec.call_id, {name: getattr(rec, name) for name in _field_names(type(rec))})

    def calls_of(self, device: str) -> set[str]:
        return set(self._device_calls.get(device, ()))
