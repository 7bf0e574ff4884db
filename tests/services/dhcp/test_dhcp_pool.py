"""Address choice under pressure: exhausted pools, offer floods, short offer holds, per-client and
per-port (relay agent option 82) limits. Real udhcpc where a client must get through; the hand-driven
client for the floods."""
from __future__ import annotations

import ipaddress
import time

import pytest

from services.dhcp import SERVICE
from services.dhcp import packet as P
from services.dhcp.leases import Lease
from tests.netns import needs_netns
from tests.services.dhcp.clients import udhcpc
from tests.services.dhcp.helpers import LoopThread, lan_config
from tests.services.dhcp.rawclient import RawClient

pytestmark = [needs_netns, pytest.mark.slow]
BOX = ipaddress.IPv4Address("10.77.0.1").packed


def serve(box, box_ctx, box_if, prepare=None, address="10.77.0.1/24", **dhcp):
    runner = LoopThread(box)
    svc = SERVICE(box_ctx)
    if prepare is not None:
        prepare(svc.table)
    runner.call(svc.start(lan_config(box_if, address=address, dhcp={"conflict_probe": False, **dhcp})))
    return runner, svc


def close(runner, svc):
    runner.call(svc.stop())
    runner.close()


class CountingDict(dict):
    """The lease table's index, counting how often the server looks into it."""

    looks = 0

    def __contains__(self, key):
        CountingDict.looks += 1
        return super().__contains__(key)

    def get(self, key, default=None):
        CountingDict.looks += 1
        return super().get(key, default)

    def __getitem__(self, key):
        CountingDict.looks += 1
        return super().__getitem__(key)

    def values(self):
        CountingDict.looks += len(self)
        return super().values()


def test_exhausted_pool_costs_a_discover_no_scan(lan, box_ctx):
    """50 DISCOVERs a second on a full pool of thousands of addresses must not scan it each time."""
    _lab, box, pc, box_if, pc_if = lan
    start, size = ipaddress.IPv4Address("10.77.1.0"), 4096

    def fill(table):  # every address bound to some other device for the next hour
        for i in range(size):
            table.put(Lease(ip=start + i, mac=f"02:aa:00:00:{i >> 8:02x}:{i & 255:02x}", network="lan",
                            expires=time.time() + 3600))

    runner, svc = serve(box, box_ctx, box_if, fill, address="10.77.0.1/16",
                        pools=[{"start": str(start), "end": str(start + size - 1)}])
    client = RawClient(pc, pc_if, "02:00:00:00:05:01")
    try:
        def install():
            svc.table.by_ip = CountingDict(svc.table.by_ip)
            CountingDict.looks = 0
        runner.sync(install)
        client.sock.settimeout(0.3)
        for _ in range(5):
            assert client.exchange(P.DISCOVER) is None  # nothing free: no offer
        looks = runner.sync(lambda: CountingDict.looks)
        assert runner.sync(lambda: svc.server.counters["received"]) == 5
        assert looks <= 5 * 20, f"{looks} lease-table look-ups for 5 DISCOVERs on a full pool of {size}"
    finally:
        client.close()
        close(runner, svc)


def test_offer_flood_does_not_starve_the_pool(lan, box_ctx, tmp_path):
    """150 DISCOVERs from 150 MACs that never REQUEST, then a real client: it gets an address at once."""
    _lab, box, pc, box_if, pc_if = lan
    runner, svc = serve(box, box_ctx, box_if, pools=[{"start": "10.77.0.100", "end": "10.77.0.199"}])
    flood = RawClient(pc, pc_if, "02:00:00:00:06:00")
    try:
        for i in range(150):
            flood.mac = bytes.fromhex(f"0200000106{i:02x}")
            flood.send(P.DISCOVER)
            time.sleep(0.005)
        time.sleep(1.5)
        assert runner.sync(lambda: svc.server.counters["offers"]) >= 100
        env = udhcpc(pc, pc_if, tmp_path / "late")
        assert ipaddress.IPv4Address(env["ip"]) in ipaddress.IPv4Network("10.77.0.0/24")
    finally:
        flood.close()
        close(runner, svc)


def test_perfdhcp_discover_only_flood_does_not_starve_the_pool(lan, box_ctx, tmp_path):
    """What ISC perfdhcp found: 150 clients that only DISCOVER (-i) took a 100-address pool for a minute."""
    _lab, box, pc, box_if, pc_if = lan
    pc.run("ip", "addr", "add", "10.77.0.2/24", "dev", pc_if)
    runner, svc = serve(box, box_ctx, box_if, pools=[{"start": "10.77.0.100", "end": "10.77.0.199"}])
    try:
        pc.run("perfdhcp", "-4", "-i", "-l", pc_if, "-R", "150", "-n", "150", "-r", "150", check=False, timeout=30)
        assert runner.sync(lambda: svc.server.counters["offers"]) >= 100
        env = udhcpc(pc, pc_if, tmp_path / "late")
        assert env["ip"].startswith("10.77.0.") and 100 <= int(env["ip"].rsplit(".", 1)[1]) <= 199
    finally:
        close(runner, svc)


def test_offer_hold_is_short_and_a_lapsed_offer_is_free_at_once(lan, box_ctx):
    _lab, box, pc, box_if, pc_if = lan
    runner, svc = serve(box, box_ctx, box_if, pools=[{"start": "10.77.0.50", "end": "10.77.0.50"}], offer_hold=2)
    first, second = RawClient(pc, pc_if, "02:00:00:00:07:01"), RawClient(pc, pc_if, "02:00:00:00:07:02")
    try:
        offer = first.exchange(P.DISCOVER)
        assert offer is not None and offer.yiaddr == ipaddress.IPv4Address("10.77.0.50")
        nak = second.exchange(P.REQUEST, requested_ip=offer.yiaddr.packed, server_id=BOX)
        assert nak is not None and nak.message_type == P.NAK  # held for the first client
        time.sleep(2.5)
        ack = second.exchange(P.REQUEST, requested_ip=offer.yiaddr.packed, server_id=BOX)
        assert ack is not None and ack.message_type == P.ACK and ack.yiaddr == offer.yiaddr
    finally:
        first.close()
        second.close()
        close(runner, svc)


def wait_received(runner, svc, count: int) -> dict:
    """The server's counters once it has read `count` messages (a loaded machine takes a while), 10 s at most."""
    deadline = time.monotonic() + 10
    counters = runner.sync(lambda: dict(svc.server.counters))
    while counters["received"] < count and time.monotonic() < deadline:
        time.sleep(0.1)
        counters = runner.sync(lambda: dict(svc.server.counters))
    return counters


def test_one_client_flooding_is_limited_and_others_still_served(lan, box_ctx):
    _lab, box, pc, box_if, pc_if = lan
    runner, svc = serve(box, box_ctx, box_if, client_messages_per_minute=60)
    noisy, quiet = RawClient(pc, pc_if, "02:00:00:00:08:01"), RawClient(pc, pc_if, "02:00:00:00:08:02")
    try:
        for _ in range(60):
            noisy.send(P.DISCOVER)
        counters = wait_received(runner, svc, 60)
        assert counters["limited"] >= 40 and counters["offers"] <= 20, counters
        offer = quiet.exchange(P.DISCOVER)
        assert offer is not None and offer.message_type == P.OFFER
    finally:
        noisy.close()
        quiet.close()
        close(runner, svc)


def test_one_switch_port_flooding_with_many_macs_is_limited(lan, box_ctx):
    """A relay agent tells which switch port a message came from (option 82 circuit id): a port that
    sends for hundreds of MACs is cut down, the port next to it is not."""
    _lab, box, pc, box_if, pc_if = lan
    pc.run("ip", "addr", "add", "10.77.0.2/24", "dev", pc_if)
    runner, svc = serve(box, box_ctx, box_if, port_messages_per_minute=120)
    relay = RawClient(pc, pc_if, "02:00:00:00:09:00", source="10.77.0.2", port=67)
    try:
        port_a, port_b = bytes((1, 6)) + b"ge-0/1", bytes((1, 6)) + b"ge-0/2"
        for i in range(80):
            relay.mac = bytes.fromhex(f"0200000209{i:02x}")
            relay.send(P.DISCOVER, to="10.77.0.1", giaddr="10.77.0.2", relay_agent=port_a)
        counters = wait_received(runner, svc, 80)
        assert counters["limited"] >= 40 and counters["offers"] <= 40, counters
        relay.mac = bytes.fromhex("0200000209ff")
        offer = relay.exchange(P.DISCOVER, to="10.77.0.1", giaddr="10.77.0.2", relay_agent=port_b)
        assert offer is not None and offer.message_type == P.OFFER
    finally:
        relay.close()
        close(runner, svc)
