"""Conferences: meet-me rooms of the configuration (pbx.conference_rooms: `conference:<name>`, dialled by
the room's number) and three-party conferences made during a call (feature code pbx.feature_codes.
conference, `app:conference-join`: the caller's other calls join an ad-hoc room; keyed during a call
followed by a third number, features/threeway.py puts the three relay sides in one). The voice side is
app.py; the mixing is the media engine's (media/mixer.py: each participant hears the others, not
itself). This module keeps the live rooms of one PBX core for the web admin's view (snapshot, mute,
remove), which the service answers through appliance.clients.PbxClient.

A participant mutes or unmutes themselves with the room's mute key (default *; a low tone says muted,
a high one unmuted) and hears how many take part with its count key (default 1); a leader (the room's
`leaders` extensions; in an ad-hoc room of the feature code, the one who keyed it) locks or unlocks the
room with its lock key (default 2: then only leaders may join; an emptied room unlocks) and removes the
participant who joined last with its remove key (default 3). The admin may mute or remove anyone.
A room with a PIN (argon2-hashed in the configuration) asks it; three wrong attempts end the call and
each counts as a failed authentication of the caller's address for the abuse guard, as voicemail PINs do.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from ..loopcall import call_on
from ..percore import PerCore
from ..voicemail import pin as _pin

MUTED_TONE = {"freqs": [400], "seconds": 0.2, "amplitude": 6000}
UNMUTED_TONE = {"freqs": [900], "seconds": 0.2, "amplitude": 6000}
ENTRY_TONE = {"freqs": [660, 880], "seconds": 0.3, "amplitude": 5000}
EXIT_TONE = {"freqs": [440], "seconds": 0.3, "amplitude": 5000}
ADHOC_PREFIX = "3way-"  # ad-hoc rooms; configured room names never start with it (validated)


def hash_pin(pin: str) -> str:
    """The argon2 hash of a room PIN; ValueError (for the admin) unless it is 4 to 12 digits."""
    try:
        return _pin.hash_pin(pin)
    except ValueError:
        raise ValueError("a conference PIN has 4 to 12 digits") from None


@dataclass
class Participant:
    id: int
    channel: object  # the participant's apps.Channel
    label: str
    name: str
    joined: float = field(default_factory=time.time)
    muted: bool = False
    leader: bool = False  # may lock the room and remove the last one in
    removed: asyncio.Event = field(default_factory=asyncio.Event)

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        side = self.channel.media
        if side is not None:
            side.relay.send({"op": "conf_mute", "side": side.id, "muted": muted})

    def public(self) -> dict:
        return {"id": self.id, "label": self.label, "name": self.name, "joined": self.joined, "muted": self.muted}


class Room:
    def __init__(self, name: str, invited: set[str] | None = None) -> None:
        self.name = name
        self.invited = invited  # ad-hoc room: the ids of the calls that may join; None: a configured room
        self.participants: list[Participant] = []
        self.changed = asyncio.Event()  # someone joined or left
        self.locked = False  # by a leader's lock key: only leaders may join
        self.pulled: set[str] = set()  # Call-IDs of the dialogs whose other party was brought in (REFER)

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class Conferences:
    """The live rooms of one PBX core (on its event loop)."""

    def __init__(self, core) -> None:
        self.core = core
        self.rooms: dict[str, Room] = {}
        self.loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)

    def room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name)
        return room

    def adhoc(self, call_ids: set[str]) -> Room:
        name = f"{ADHOC_PREFIX}{next(self._ids)}-{sorted(call_ids)[0][:8]}"
        room = self.rooms[name] = Room(name, set(call_ids))
        return room

    def add(self, room: Room, channel, leader: bool = False) -> Participant:
        caller = channel.caller
        label = caller.label if caller is not None else "?"
        user = self.core.users.get(label)
        p = Participant(next(self._ids), channel, label, user.full_name if user else channel.call.caller_name,
                        leader=leader)
        room.participants.append(p)
        room.touch()
        return p

    def remove(self, room: Room, p: Participant) -> None:
        if p in room.participants:
            room.participants.remove(p)
            room.touch()
        if not room.participants:
            room.locked = False
        if not room.participants and (room.invited is not None or self.core.cfg.room(room.name) is None):
            self.rooms.pop(room.name, None)

    def tone(self, room: Room, tone: dict) -> None:
        self.core.relay.send({"op": "conf_tone", "room": room.name, "tone": tone})

    # -- for the web admin (on the loop: see run_on_loop) ------------------------------------------
    def find(self, room: str, pid: int) -> Participant | None:
        live = self.rooms.get(room)
        return next((p for p in live.participants if p.id == pid), None) if live else None

    def mute(self, room: str, pid: int, muted: bool) -> bool:
        p = self.find(room, pid)
        if p is None:
            return False
        p.set_muted(muted)
        return True

    def kick(self, room: str, pid: int) -> bool:
        p = self.find(room, pid)
        if p is None:
            return False
        p.removed.set()
        return True


for_core: PerCore[Conferences] = PerCore(Conferences)


def snapshot(core, confs: Conferences | None) -> list[dict]:
    """The configured rooms and the live ad-hoc ones, with their participants."""
    cfg_rooms = {r.name: r for r in core.cfg.conference_rooms}
    live_rooms = confs.rooms if confs is not None else {}
    out = []
    for name in dict.fromkeys([*cfg_rooms, *live_rooms]):
        live, r = live_rooms.get(name), cfg_rooms.get(name)
        out.append({"name": name, "number": r.number if r else "", "title": r.title if r else "",
                    "adhoc": r is None, "max_participants": r.max_participants if r else 0,
                    "pin": bool(r and r.pin_hash),
                    "participants": [p.public() for p in live.participants] if live else []})
    return out


def run_on_loop(core, fn, *args, timeout: float = 5.0):
    """`fn(conferences or None, *args)` on the PBX's loop, called from it (the service's own process) or
    from another thread (a service run in the web admin's process)."""
    confs = for_core.existing(core)
    if confs is None:
        return fn(None, *args)  # no conference yet on this core: nothing live
    return call_on(confs.loop, lambda: fn(confs, *args), timeout)
