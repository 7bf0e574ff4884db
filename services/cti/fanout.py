"""Which JSON API event streams an event may concern, found through a per-device index rather than by
asking every stream: a call event or a device's presence reaches the candidates of its devices only
(O(matching)); jsonapi.py still applies its exact rule to each candidate."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from .tokens import Holder


class Stream(Protocol):
    holder: Holder  # its scope and, for a staff desk, its extension
    devices: frozenset[str] | None


class SubscriberIndex:
    """Streams by device: a stream naming its devices is filed under them; one that follows its whole
    scope under the scope's devices, or under `everywhere` for a scope of every device. A staff desk's
    stream that follows its whole scope also sees colleagues' presence (BLF policy): `desks` files it by
    the desk's own extension, and `policy` (from the lines) says who may watch whom."""

    def __init__(self) -> None:
        self.by_device: dict[str, dict[Stream, None]] = {}
        self.everywhere: dict[Stream, None] = {}
        self.whole = {"*": self.everywhere}  # the table of `everywhere` (its bucket is never removed)
        self.desks: dict[str, dict[Stream, None]] = {}  # the desk's extension -> its whole-scope streams
        self.order: dict[Stream, list[tuple[dict, str]]] = {}  # stream -> the (table, key) buckets filing it
        self.policy: dict[str, tuple[str, frozenset[str]]] = {}  # device -> (blf_watchers, extensions sharing a group)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Stream]:
        return iter(list(self.order))

    def __contains__(self, stream: Stream) -> bool:
        return stream in self.order

    def configure(self, lines: Iterable) -> None:
        """Each line's presence policy and the extensions in a group with it (contributions.Line)."""
        lines = list(lines)
        members: dict[str, set[str]] = {}
        for line in lines:
            for group in line.groups:
                members.setdefault(group, set()).add(line.extension)
        self.policy = {line.extension: (line.blf_watchers, frozenset().union(*(members[g] for g in line.groups)))
                       for line in lines}

    def _buckets(self, stream: Stream) -> list[tuple[dict, str]]:
        if stream.devices is not None:
            return [(self.by_device, d) for d in stream.devices]
        scope = stream.holder.scope
        found = [(self.whole, "*")] if "*" in scope else [(self.by_device, d) for d in scope]
        if stream.holder.extension:
            found.append((self.desks, stream.holder.extension))
        return found

    def add(self, stream: Stream) -> None:
        if stream in self.order:
            return
        self.order[stream] = buckets = self._buckets(stream)
        for table, key in buckets:
            table.setdefault(key, {})[stream] = None

    def discard(self, stream: Stream) -> None:
        for table, key in self.order.pop(stream, ()):
            bucket = table.get(key, {})
            bucket.pop(stream, None)
            if not bucket and table is not self.whole:
                table.pop(key, None)

    def for_devices(self, devices: Iterable[str]) -> list[Stream]:
        """Every stream that may want an event about any of `devices`, once each."""
        found: dict[Stream, None] = dict(self.everywhere)
        for device in devices:
            found.update(self.by_device.get(device, {}))
        return list(found)

    def for_presence(self, device: str) -> list[Stream]:
        """Every stream that may be told `device`'s presence: its own candidates and the desks the line's
        BLF policy may let watch it."""
        found: dict[Stream, None] = dict(self.everywhere)
        found.update(self.by_device.get(device, {}))
        policy, sharing = self.policy.get(device, ("nobody", frozenset()))
        if policy == "everyone":
            for streams in self.desks.values():
                found.update(streams)
        elif policy == "same_groups":
            for extension in sharing:
                found.update(self.desks.get(extension, {}))
        return list(found)

