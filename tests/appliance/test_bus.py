"""The event bus: prefixes, retained state for late subscribers, bounded streams, and the same bus
reached from another process through the hub's Unix socket (a real child process)."""
from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading

from appliance.bus import MAX_LINE, Bus, BusHub, Event, RemoteBus


def test_subscribers_joining_and_leaving_after_a_topic_was_published():
    """Who gets a topic's events is remembered per topic: a later (un)subscription must still count."""
    bus = Bus()
    early, late = [], []
    off_early = bus.subscribe("pbx.", early.append)
    bus.publish("pbx.call", "c1", {"n": 1})
    off_late = bus.subscribe("pbx.call", late.append)
    bus.publish("pbx.call", "c2", {"n": 2})
    off_early()
    bus.publish("pbx.call", "c3", {"n": 3})
    off_late()
    bus.publish("pbx.call", "c4", {"n": 4})
    assert [e.key for e in early] == ["c1", "c2"] and [e.key for e in late] == ["c2", "c3"]


def test_prefix_subscription_retained_state_and_unsubscribe():
    bus = Bus()
    seen = []
    off = bus.subscribe("dhcp.", seen.append)
    bus.subscribe("dhcp.", lambda e: 1 / 0)  # a failing subscriber is logged, the others still run
    bus.publish("dhcp.lease", "10.0.0.5", {"mac": "aa"}, retain=True)
    bus.publish("pbx.call", "c1", {"state": "alerting"})
    bus.publish("dhcp.lease", "10.0.0.6", {"mac": "bb"}, retain=True)
    bus.publish("dhcp.lease", "10.0.0.5", None)
    assert [e.key for e in seen] == ["10.0.0.5", "10.0.0.6", "10.0.0.5"] and seen[-1].data is None
    assert bus.retained("dhcp.lease") == {"10.0.0.6": {"mac": "bb"}}
    assert bus.retained("pbx.call") == {} and not bus.is_retained("pbx.call")
    off()
    bus.publish("dhcp.lease", "10.0.0.7", {"mac": "cc"})
    assert len(seen) == 3 and "10.0.0.7" in bus.retained("dhcp.lease")  # a retained topic stays retained


def test_stream_is_fed_from_other_threads_and_bounded():
    bus = Bus()

    async def main():
        got = []

        async def consume():
            async for event in bus.stream("pbx.", maxsize=5):
                got.append(event.key)
                if len(got) == 3:
                    return
        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0)
        threads = [threading.Thread(target=bus.publish, args=("pbx.call", f"c{i}", {})) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        await asyncio.wait_for(task, 5)
        return got
    assert sorted(asyncio.run(main())) == ["c0", "c1", "c2"]

    async def flood():
        stream = bus.stream("flood", maxsize=10)
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        for i in range(50):
            bus.publish("flood", str(i), {})
        await asyncio.sleep(0.05)
        event = await first
        await stream.aclose()
        return event
    assert asyncio.run(flood()).key == "0" and bus.dropped >= 39


CHILD = textwrap.dedent("""
    import asyncio, json, sys
    from appliance.bus import RemoteBus

    async def main():
        bus = RemoteBus()
        await bus.connect(sys.argv[1])
        got = asyncio.Queue()
        bus.subscribe("dhcp.", got.put_nowait)
        bus.subscribe("dhcp.lease", lambda e: None)  # overlapping: still one copy of each event
        seed = await asyncio.wait_for(got.get(), 5)
        print(json.dumps({"seed": [seed.key, seed.data]}), flush=True)
        bus.publish("dns.name", "printer", {"ip": "10.0.0.9"}, retain=True)
        live = await asyncio.wait_for(got.get(), 5)
        await asyncio.sleep(0.2)
        print(json.dumps({"live": [live.key, live.data], "retained": bus.retained("dhcp.lease"),
                          "extra": got.qsize()}), flush=True)
        await bus.close()
    asyncio.run(main())
""")


def test_a_child_process_shares_the_bus_through_the_hub(tmp_path):
    bus = Bus()
    bus.publish("dhcp.lease", "10.0.0.5", {"mac": "aa"}, retain=True)
    sock = tmp_path / "bus.sock"

    async def main():
        hub = BusHub(bus)
        await hub.serve(sock)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        names = asyncio.Queue()
        bus.subscribe("dns.", names.put_nowait)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(sock), stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.getcwd()})
        first = json.loads(await asyncio.wait_for(child.stdout.readline(), 10))
        name = await asyncio.wait_for(names.get(), 5)
        bus.publish("dhcp.lease", "10.0.0.6", {"mac": "bb"})
        second = json.loads(await asyncio.wait_for(child.stdout.readline(), 10))
        await asyncio.wait_for(child.wait(), 10)
        await hub.close()
        return first, name, second
    first, name, second = asyncio.run(main())
    assert first == {"seed": ["10.0.0.5", {"mac": "aa"}]}
    assert name == Event("dns.name", "printer", {"ip": "10.0.0.9"}) and "printer" in bus.retained("dns.name")
    assert second["live"] == ["10.0.0.6", {"mac": "bb"}] and second["extra"] == 0
    assert second["retained"] == {"10.0.0.5": {"mac": "aa"}, "10.0.0.6": {"mac": "bb"}}


def test_hostile_hub_clients_are_dropped_and_the_hub_keeps_serving(tmp_path):
    bus = Bus()
    sock = tmp_path / "bus.sock"

    async def main():
        hub = BusHub(bus)
        await hub.serve(sock)
        for junk in (b"not json\n", b'{"pub": {"topic": 5}}\n', b"x" * (MAX_LINE + 10) + b"\n", b'["list"]\n'):
            reader, writer = await asyncio.open_unix_connection(str(sock))
            writer.write(junk)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the hub
            writer.close()
        good = RemoteBus()
        await good.connect(sock)
        seen = asyncio.Queue()
        bus.subscribe("ok", seen.put_nowait)
        good.publish("ok", "1", {"fine": True})
        event = await asyncio.wait_for(seen.get(), 5)
        await good.close()
        await hub.close()
        return event
    assert asyncio.run(main()) == Event("ok", "1", {"fine": True})
