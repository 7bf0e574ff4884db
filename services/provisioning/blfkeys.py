"""Busy lamp field keys of a desk phone: one per ring-group colleague of its user, from the
configuration document alone (pbx.groups, pbx.extensions, pbx.feature_codes; never the PBX itself).
A colleague whose BLF policy lets nobody watch them gets no key; "same_groups" is met by construction."""
from __future__ import annotations

from dataclasses import dataclass

MAX_KEYS = 10  # line/function keys given to BLF: enough for a team, fits the common desk phones


@dataclass(frozen=True)
class BlfKey:
    extension: str
    label: str


@dataclass(frozen=True)
class Pickup:
    directed: str  # the directed pickup code (BLF keys of a ringing colleague dial it + the extension)
    group: str


def colleagues(config, extension: str) -> list[BlfKey]:
    """Members of the ring groups `extension` belongs to, in group then member order, without itself."""
    pbx = getattr(config, "pbx", None)
    if pbx is None:
        return []
    names = {u.extension: u.full_name for u in config.users if u.enabled and u.extension}
    seen: list[str] = []
    for group in pbx.groups:
        if extension in group.members:
            seen += [m for m in group.members if m != extension and m not in seen and m in names]
    allowed = [m for m in seen if getattr(pbx.extensions.get(m), "blf_watchers", "everyone") != "nobody"]
    return [BlfKey(m, names[m]) for m in allowed[:MAX_KEYS]]


def pickup_codes(config) -> Pickup | None:
    pbx = getattr(config, "pbx", None)
    return Pickup(pbx.feature_codes.directed_pickup, pbx.feature_codes.pickup) if pbx is not None else None
