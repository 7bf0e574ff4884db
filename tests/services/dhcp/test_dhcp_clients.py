"""The DHCP server against real clients (busybox udhcpc, ISC dhclient) over a veth pair."""
from __future__ import annotations

import ipaddress
import json

import pytest

from services.dhcp import SERVICE
from tests.netns import needs_netns
from tests.services.dhcp.clients import dhclient, udhcpc
from tests.services.dhcp.helpers import LoopThread, lan_config

pytestmark = [needs_netns, pytest.mark.slow]


def start(box, box_ctx, config):
    runner = LoopThread(box)
    svc = SERVICE(box_ctx)
    runner.call(svc.start(config))
    return runner, svc


def stop(runner, svc):
    runner.call(svc.stop())
    runner.close()


def test_udhcpc_gets_lease_with_options(lan, box_ctx, tmp_path):
    _lab, box, pc, box_if, pc_if = lan
    config = lan_config(box_if, dhcp={"pools": [{"start": "10.77.0.50", "end": "10.77.0.60"}], "lease_time": 600,
                                      "ntp_servers": ["10.77.0.123"], "conflict_probe": False})
    runner, svc = start(box, box_ctx, config)
    try:
        env = udhcpc(pc, pc_if, tmp_path / "c1", "-x", "hostname:laptop7")
        assert ipaddress.IPv4Address(env["ip"]) in ipaddress.IPv4Network("10.77.0.48/28")
        assert env["subnet"] == "255.255.255.0"
        assert env["router"] == "10.77.0.1"
        assert env["dns"].split() == ["10.77.0.1"]
        assert env["domain"] == "office.test"
        assert env["ntpsrv"] == "10.77.0.123"
        assert env["lease"] == "600"
        assert env["serverid"] == "10.77.0.1"
        assert "tftp" not in env and "opt150" not in env  # a PC is not a phone
        leases = runner.sync(svc.leases)
        assert [(item["ip"], item["hostname"]) for item in leases] == [(env["ip"], "laptop7")]
        mac = pc.run("cat", f"/sys/class/net/{pc_if}/address").stdout.strip()
        neigh = box.run("ip", "neigh", "show", env["ip"], "dev", box_if).stdout
        assert mac in neigh  # the OFFER/ACK went by unicast, after an ARP entry was set (RFC 2131 4.1)
    finally:
        stop(runner, svc)


def test_phone_vendor_class_gets_provisioning_url(lan, box_ctx, tmp_path):
    _lab, box, pc, box_if, pc_if = lan
    config = lan_config(box_if, dhcp={"conflict_probe": False, "provisioning_url": "http://10.77.0.1:8081/",
                                      "vendor_rules": [{"match": "yealink", "vendor_options_hex": "0104c0a80101"}]})
    runner, svc = start(box, box_ctx, config)
    try:
        env = udhcpc(pc, pc_if, tmp_path / "phone", "-V", "Yealink SIP-T46U")
        assert 100 <= int(env["ip"].split(".")[-1]) <= 199  # the default pool
        assert env["tftp"] == "bad"  # option 66 was sent; udhcpc only accepts host names there (dhclient below)
        assert env["opt150"] == "0a4d0001"  # option 150: the box, hex
        assert env["opt43"] == "0104c0a80101"
        pc_env = udhcpc(pc, pc_if, tmp_path / "pc", "-V", "MSFT 5.0")
        assert "tftp" not in pc_env and "opt150" not in pc_env
        isc = dhclient(pc, pc_if, tmp_path / "isc", vendor="yealink W70B")
        assert isc["new_tftp_server_name"] == "http://10.77.0.1:8081/"
    finally:
        stop(runner, svc)


def test_reservation_gives_fixed_address_and_name(lan, box_ctx, tmp_path):
    _lab, box, pc, box_if, pc_if = lan
    mac = pc.run("cat", f"/sys/class/net/{pc_if}/address").stdout.strip()
    config = lan_config(box_if, dhcp={"conflict_probe": False,
                                      "reservations": [{"mac": mac.upper(), "ip": "10.77.0.20",
                                                        "hostname": "printer"}]})
    runner, svc = start(box, box_ctx, config)
    try:
        env = udhcpc(pc, pc_if, tmp_path / "r")
        assert env["ip"] == "10.77.0.20"
        assert env["hostname"] == "printer"
    finally:
        stop(runner, svc)


def test_dhclient_lease_survives_server_restart(lan, box_ctx, tmp_path):
    _lab, box, pc, box_if, pc_if = lan
    config = lan_config(box_if, dhcp={"conflict_probe": False, "lease_time": 3600})
    runner, svc = start(box, box_ctx, config)
    folder = tmp_path / "isc"
    try:
        env = dhclient(pc, pc_if, folder, hostname="isc-pc")
        assert env["reason"] == "BOUND"
        first = env["new_ip_address"]
        assert env["new_domain_name"] == "office.test"
        assert env["new_routers"] == "10.77.0.1"
        assert env["new_dhcp_lease_time"] == "3600"
    finally:
        stop(runner, svc)
    saved = json.loads((box_ctx.state_dir("dhcp") / "leases.json").read_text())
    assert [(item["ip"], item["hostname"]) for item in saved["leases"]] == [(first, "isc-pc")]

    runner, svc = start(box, box_ctx, config)  # a new server process: only the file remembers
    try:
        assert [item["ip"] for item in runner.sync(svc.leases)] == [first]
        # same MAC and, like dhclient, no client identifier (-C): the same client, the same address
        other = udhcpc(pc, pc_if, tmp_path / "other", "-C", "-r", first)
        assert other["ip"] == first
        env = dhclient(pc, pc_if, folder, hostname="isc-pc")  # INIT-REBOOT from the lease file
        assert env["reason"] in ("REBOOT", "BOUND") and env["new_ip_address"] == first
    finally:
        stop(runner, svc)


def test_conflicting_address_is_probed_and_skipped(lan, box_ctx, tmp_path):
    lab, box, pc, box_if, pc_if = lan
    pc.run("ip", "addr", "add", "10.77.0.30/24", "dev", pc_if)  # a host already using the first pool address
    config = lan_config(box_if, dhcp={"pools": [{"start": "10.77.0.30", "end": "10.77.0.35"}],
                                      "conflict_probe": True, "probe_timeout": 0.5})
    runner, svc = start(box, box_ctx, config)
    try:
        env = udhcpc(pc, pc_if, tmp_path / "p")
        assert env["ip"] == "10.77.0.31"
        assert runner.sync(lambda: svc.server.counters["conflicts"]) == 1
    finally:
        stop(runner, svc)
