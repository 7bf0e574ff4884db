"""The JSON API's per-device index of event streams finds, for a call event and for a device's presence,
every stream the exact rule (jsonapi.Subscriber.wants, JsonApi.sees_presence) lets through, and far
fewer than all streams; streams leave it when they go. A frame encoded once for many streams is the one
the WebSocket protocol would have sent each."""
from __future__ import annotations

import random
from types import SimpleNamespace

from websockets.protocol import State
from websockets.server import ServerProtocol

from services.cti.fanout import SubscriberIndex
from services.cti.httpserver import text_frame
from services.cti.jsonapi import JsonApi, Subscriber
from services.cti.tokens import Holder

DEVICES = [f"{200 + i}" for i in range(30)]


def _lines() -> dict:
    rng = random.Random(7)
    return {d: SimpleNamespace(extension=d, groups=rng.sample(["sales", "desk", "lab"], rng.randrange(3)),
                               blf_watchers=rng.choice(["everyone", "same_groups", "nobody"])) for d in DEVICES}


def _streams(rng: random.Random) -> list[Subscriber]:
    streams = []
    for i in range(300):
        kind = i % 4
        if kind == 0:  # a CRM token of every device, following a few
            holder = Holder(f"crm{i}", frozenset({"*"}), f"k{i}")
        elif kind == 1:  # a token of a few devices
            holder = Holder(f"app{i}", frozenset(rng.sample(DEVICES, 3)), f"k{i}")
        else:  # a staff desk
            ext = rng.choice(DEVICES)
            holder = Holder(f"desk:{ext}", frozenset({ext}), f"k{i}", f"u{ext}", ext, 1e12)
        devices = frozenset(rng.sample(sorted(holder.scope) if "*" not in holder.scope else DEVICES, 2)[:1]) \
            if kind in (0, 1) and rng.random() < 0.7 else None
        streams.append(Subscriber(holder, None, devices))
    return streams


def test_the_index_finds_exactly_whom_the_rules_let_through():
    rng = random.Random(3)
    lines = _lines()
    api = JsonApi.__new__(JsonApi)
    api.server = SimpleNamespace(lines=lines)
    index = SubscriberIndex()
    index.configure(lines.values())
    streams = _streams(rng)
    for s in streams:
        index.add(s)
    for _ in range(200):
        devices = set(rng.sample(DEVICES, rng.randrange(1, 4)))
        wanted = {s for s in streams if any(s.wants(d) for d in devices)}
        found = index.for_devices(devices)
        assert len(found) == len(set(found))
        assert wanted <= set(found)
        assert len(found) < len(streams) / 2
        device = rng.choice(DEVICES)
        told = {s for s in streams
                if (s.devices is None or device in s.devices) and api.sees_presence(s.holder, device)}
        assert told <= set(index.for_presence(device))
    gone = streams[::2]
    for s in gone:
        index.discard(s)
    index.discard(gone[0])  # twice is harmless
    assert len(index) == len(streams) - len(gone)
    assert not set(gone) & set(index.for_devices(DEVICES)) and not set(gone) & set(index.for_presence(DEVICES[0]))
    for s in streams[1::2]:
        index.discard(s)
    assert not index.by_device and not index.desks and not index.everywhere and not len(index)


def test_a_broadcast_frame_is_what_the_websocket_protocol_would_send():
    for text in ("", '{"type": "call"}', "é" * 200, "x" * 70000):  # the three length encodings
        proto = ServerProtocol(state=State.OPEN)
        proto.send_text(text.encode())
        assert text_frame(text) == b"".join(proto.data_to_send())
