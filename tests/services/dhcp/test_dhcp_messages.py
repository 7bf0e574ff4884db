"""DECLINE, RELEASE, INFORM, NAK and server selection, with a hand-driven client; a RENEW by udhcpc;
a voice VLAN scope served on its own VLAN interface."""
from __future__ import annotations

import ipaddress
import os
import signal
import time

import pytest

from appliance.leases import lease_bus
from services.dhcp import SERVICE
from services.dhcp import packet as P
from tests.netns import ip, needs_netns
from tests.services.dhcp.clients import read_env
from tests.services.dhcp.helpers import LoopThread, lan_config
from tests.services.dhcp.rawclient import RawClient

pytestmark = [needs_netns, pytest.mark.slow]
BOX = ipaddress.IPv4Address("10.77.0.1").packed


@pytest.fixture
def served(lan, box_ctx):
    _lab, box, pc, box_if, pc_if = lan
    config = lan_config(box_if, dhcp={"conflict_probe": False, "lease_time": 600,
                                      "pools": [{"start": "10.77.0.50", "end": "10.77.0.53"}]})
    runner = LoopThread(box)
    svc = SERVICE(box_ctx)
    runner.call(svc.start(config))
    yield runner, svc, pc, pc_if
    runner.call(svc.stop())
    runner.close()


def test_decline_quarantines_and_release_frees(served, box_ctx):
    runner, svc, pc, pc_if = served
    events = []
    runner.sync(lease_bus(box_ctx).subscribe, lambda kind, lease: events.append((kind, str(lease.ip))))
    client = RawClient(pc, pc_if, "02:00:00:00:01:01")
    try:
        first, _ = client.lease()
        client.send(P.DECLINE, requested_ip=first.packed, server_id=BOX)
        time.sleep(0.3)
        second, _ = client.lease()
        assert second != first  # the declined address rests in quarantine
        assert runner.sync(lambda: svc.table.is_quarantined(first, time.time()))
        pc.run("ip", "addr", "add", f"{second}/24", "dev", pc_if)  # a bound client unicasts its RELEASE
        client.send(P.RELEASE, ciaddr=str(second), to="10.77.0.1", server_id=BOX)
        time.sleep(0.3)
        assert runner.sync(svc.leases) == []
        assert events == [("bound", str(first)), ("gone", str(first)), ("bound", str(second)), ("gone", str(second))]
    finally:
        client.close()


def test_inform_gets_options_without_a_lease(served):
    _runner, _svc, pc, pc_if = served
    pc.run("ip", "addr", "add", "10.77.0.200/24", "dev", pc_if)
    client = RawClient(pc, pc_if, "02:00:00:00:01:02", source="0.0.0.0")
    try:
        ack = client.exchange(P.INFORM, ciaddr="10.77.0.200", to="10.77.0.1")
        assert ack is not None and ack.message_type == P.ACK
        assert ack.yiaddr == P.ZERO and P.LEASE_TIME not in ack.options
        assert ack.options[P.DOMAIN_NAME] == b"office.test" and ack.options[P.DNS_SERVERS] == BOX
    finally:
        client.close()


def test_nak_for_wrong_address_and_silence_for_other_servers_offer(served):
    runner, svc, pc, pc_if = served
    client = RawClient(pc, pc_if, "02:00:00:00:01:03")
    try:
        nak = client.exchange(P.REQUEST, requested_ip=ipaddress.IPv4Address("192.0.2.9").packed)  # INIT-REBOOT
        assert nak is not None and nak.message_type == P.NAK and P.MESSAGE in nak.options
        offer = client.exchange(P.DISCOVER)
        other = ipaddress.IPv4Address("10.77.0.254").packed
        assert client.exchange(P.REQUEST, requested_ip=offer.yiaddr.packed, server_id=other) is None
        assert runner.sync(lambda: offer.yiaddr in svc.table.by_ip) is False  # our offer was withdrawn
        taker = RawClient(pc, pc_if, "02:00:00:00:01:04")
        try:  # a client we know (it has a lease) asks for another one's bound address: NAK
            ip, _ = taker.lease()
            client.lease()
            assert client.exchange(P.REQUEST, requested_ip=ip.packed).message_type == P.NAK
        finally:
            taker.close()
    finally:
        client.close()


def test_pool_exhaustion_means_no_offer(served):
    _runner, svc, pc, pc_if = served
    clients = [RawClient(pc, pc_if, f"02:00:00:00:02:{i:02x}") for i in range(5)]
    try:
        got = [c.lease()[0] for c in clients[:4]]
        assert sorted(got) == [ipaddress.IPv4Address(f"10.77.0.{n}") for n in range(50, 54)]
        assert clients[4].exchange(P.DISCOVER) is None
    finally:
        for c in clients:
            c.close()


RENEW_SCRIPT = """#!/bin/sh
env | sort > "{out}/$1.env"
[ "$1" = bound ] && ip addr add "$ip/24" dev "$interface"
exit 0
"""


def test_udhcpc_renews_by_unicast(served, tmp_path):
    _runner, svc, pc, pc_if = served
    script = tmp_path / "hook.sh"
    script.write_text(RENEW_SCRIPT.format(out=tmp_path))
    script.chmod(0o755)
    proc = pc.popen(["udhcpc", "-i", pc_if, "-f", "-s", str(script), "-t", "4", "-T", "2"])

    def event(name: str) -> dict[str, str]:  # the hook's file, once written completely (env | sort > file)
        deadline = time.monotonic() + 15
        while "ip" not in (found := read_env(tmp_path / f"{name}.env")) and time.monotonic() < deadline:
            time.sleep(0.1)
        return found
    try:
        bound = event("bound")
        time.sleep(0.3)  # udhcpc is BOUND once its hook returned (it adds the address first)
        pids = pc.run("pgrep", "-f", f"udhcpc -i {pc_if}").stdout.split()
        os.kill(int(pids[0]), signal.SIGUSR1)  # renew now
        renew = event("renew")
        assert renew["ip"] == bound["ip"] and renew["lease"] == "600"
        assert svc.server.counters["acks"] == 2
    finally:
        proc.kill()
        proc.wait(5)


def test_voice_vlan_scope(lan, box_ctx, tmp_path):
    from tests.services.dhcp.clients import udhcpc

    _lab, box, pc, box_if, pc_if = lan
    # the voice network arrives on "<lan>.<vlan id>"; this kernel has no 802.1q module, so a veth pair
    # with those names stands in for the VLAN (it dies with the namespaces)
    ip("link", "add", f"{box_if}.42", "type", "veth", "peer", "name", f"{pc_if}.42")
    for host, ifname in ((box, f"{box_if}.42"), (pc, f"{pc_if}.42")):
        ip("link", "set", ifname, "netns", host.name)
        host.run("ip", "link", "set", ifname, "up")
    box.run("ip", "addr", "add", "10.78.0.1/24", "dev", f"{box_if}.42")
    config = lan_config(box_if, dhcp={"conflict_probe": False, "provisioning_url": "http://10.78.0.1:8081/"})
    document = config.model_dump(mode="json")
    document["network"]["voice"] = {"enabled": True, "vlan_id": 42, "address": "10.78.0.1/24"}
    document["dhcp"]["pools"] = [{"network": "voice", "start": "10.78.0.10", "end": "10.78.0.20"}]
    config = type(config).model_validate(document)
    runner = LoopThread(box)
    svc = SERVICE(box_ctx)
    runner.call(svc.start(config))
    try:
        phone = udhcpc(pc, f"{pc_if}.42", tmp_path / "phone")
        assert ipaddress.IPv4Address(phone["ip"]) in ipaddress.IPv4Network("10.78.0.0/27")
        assert phone["router"] == "10.78.0.1" and phone["opt150"] == "0a4e0001"  # everyone here is a phone
        pc_env = udhcpc(pc, pc_if, tmp_path / "pc")
        assert pc_env["ip"].startswith("10.77.0.1") and "opt150" not in pc_env
        networks = {lease["network"] for lease in runner.sync(svc.leases)}
        assert networks == {"lan", "voice"}
    finally:
        runner.call(svc.stop())
        runner.close()
