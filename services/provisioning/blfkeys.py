"""Busy lamp field keys of a desk phone: one per ring-group colleague of its user, from the
PBX's contributions alone (contributions.Line and FeatureCode; never the PBX or its section).
A colleague whose BLF policy lets nobody watch them gets no key; "same_groups" is met by construction."""
from __future__ import annotations

from dataclasses import dataclass

from appliance.contributions import FeatureCode, Line, collect

MAX_KEYS = 10  # line/function keys given to BLF: enough for a team, fits the common desk phones


@dataclass(frozen=True)
class BlfKey:
    extension: str
    label: str


@dataclass(frozen=True)
class Pickup:
    directed: str  # the directed pickup code (BLF keys of a ringing colleague dial it + the extension)
    group: str


def colleagues(config, extension: str, lab: bool = False) -> list[BlfKey]:
    """Members of the ring groups `extension` belongs to, in group then line order, without itself."""
    lines = collect(config, Line, lab)
    own = next((line for line in lines if line.extension == extension), None)
    if own is None:
        return []
    names = {u.extension: u.full_name for u in config.users if u.enabled and u.extension}
    seen: list[str] = []
    for group in own.groups:
        seen += [line.extension for line in lines if group in line.groups and line.extension != extension
                 and line.blf_watchers != "nobody" and line.extension not in seen and line.extension in names]
    return [BlfKey(m, names[m]) for m in seen[:MAX_KEYS]]


def pickup_codes(config, lab: bool = False) -> Pickup | None:
    codes = {c.name: c.code for c in collect(config, FeatureCode, lab)}
    return Pickup(codes["directed_pickup"], codes["pickup"]) if "pickup" in codes else None
