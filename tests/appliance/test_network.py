"""appliance.network in namespaces: LAN, voice VLAN, static/DHCP WAN (real udhcpc and udhcpd), routes."""
from __future__ import annotations

import subprocess

import pytest

from appliance import schema
from appliance.network import NetworkError, apply_network, network_status, stop_network, wait_for_lease
from tests.netns import Lab, needs_netns, udhcpd


def addresses(host, ifname: str) -> list[str]:
    out = host.run("ip", "-4", "-o", "addr", "show", "dev", ifname).stdout
    return [line.split()[3] for line in out.splitlines()]


def routes(host) -> str:
    return host.run("ip", "-4", "route").stdout


def test_lab_mode_touches_nothing(ctx):
    config = schema.parse({"network": {"lan": {"interface": "nonexistent0", "address": "192.0.2.1/24"}}})
    assert apply_network(config, ctx=ctx) == {
        "applied": False, "reason": "lab mode: the host's networking is left alone"}
    assert network_status(ctx=ctx)["lab"] is True


@pytest.fixture
def lab():
    with Lab() as lab:
        yield lab


@needs_netns
@pytest.mark.netns
def test_static_lan_voice_wan_and_routes(lab, ctx):
    box, pc, inet = lab.host("box"), lab.host("pc"), lab.host("inet")
    lan_if, _ = lab.link(box, None, pc, "192.0.2.10/24")
    wan_if, _ = lab.link(box, "198.51.100.99/24", inet, "198.51.100.1/24")  # a stale address to replace
    doc = {"network": {
        "lan": {"interface": lan_if, "address": "192.0.2.1/24"},
        "wan": {"interface": wan_if, "mode": "static", "address": "198.51.100.2/24", "gateway": "198.51.100.1"},
        "routes": [{"destination": "203.0.113.0/24", "gateway": "192.0.2.10"}],
    }}
    report = apply_network(schema.parse(doc), netns=box.name, ctx=ctx)
    assert report["routes"] == ["203.0.113.0/24 via 192.0.2.10"]
    assert addresses(box, lan_if) == ["192.0.2.1/24"]
    assert addresses(box, wan_if) == ["198.51.100.2/24"]
    table = routes(box)
    assert "default via 198.51.100.1" in table and "203.0.113.0/24 via 192.0.2.10" in table
    assert box.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    assert box.run("ping", "-c1", "-W2", "198.51.100.1", check=False).returncode == 0
    # the host's own forwarding setting is untouched by the namespace's
    status = network_status(netns=box.name, ctx=ctx)
    names = {i["name"]: i for i in status["interfaces"]}
    assert names[lan_if]["addresses"] == ["192.0.2.1/24"] and names[lan_if]["state"] == "UP"
    assert any(r["destination"] == "default" and r["gateway"] == "198.51.100.1" for r in status["routes"])

    # second apply: route changed, WAN off: the old route and the default go away
    doc["network"]["routes"] = [{"destination": "10.9.0.0/16", "gateway": "192.0.2.10"}]
    doc["network"]["wan"] = {"interface": wan_if, "mode": "none"}
    apply_network(schema.parse(doc), netns=box.name, ctx=ctx)
    table = routes(box)
    assert "203.0.113.0/24" not in table and "10.9.0.0/16 via 192.0.2.10" in table
    assert "default" not in table


def kernel_has_vlans() -> bool:
    with Lab() as lab:
        host = lab.host("vlchk")
        a, _ = lab.link(host, None, host, None)
        return host.run("ip", "link", "add", "link", a, "name", "vt.5", "type", "vlan", "id", "5",
                        check=False).returncode == 0


@needs_netns
@pytest.mark.netns
def test_voice_vlan_on_the_lan_port(lab, ctx):
    box, pc = lab.host("box"), lab.host("pc")
    lan_if, _ = lab.link(box, None, pc, "192.0.2.10/24")
    doc = {"network": {"lan": {"interface": lan_if, "address": "192.0.2.1/24"}, "wan": {"mode": "none"},
                       "voice": {"enabled": True, "vlan_id": 42, "address": "10.42.0.1/24"}}}
    if not kernel_has_vlans():
        with pytest.raises(NetworkError, match="no 802.1Q VLAN support"):
            apply_network(schema.parse(doc), netns=box.name, ctx=ctx)
        pytest.skip("this kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q)")
    apply_network(schema.parse(doc), netns=box.name, ctx=ctx)
    assert addresses(box, f"{lan_if}.42") == ["10.42.0.1/24"]
    assert "vlan protocol 802.1Q id 42" in box.run("ip", "-d", "link", "show", f"{lan_if}.42").stdout
    doc["network"]["voice"]["enabled"] = False
    apply_network(schema.parse(doc), netns=box.name, ctx=ctx)
    assert box.run("ip", "link", "show", f"{lan_if}.42", check=False).returncode != 0


@needs_netns
@pytest.mark.netns
def test_missing_interface_is_a_clear_error(lab, ctx):
    box = lab.host("box")
    config = schema.parse({"network": {"lan": {"interface": "nosuch0", "address": "192.0.2.1/24"}}})
    with pytest.raises(NetworkError, match="no network interface named nosuch0"):
        apply_network(config, netns=box.name, ctx=ctx)


@needs_netns
@pytest.mark.netns
@pytest.mark.slow
def test_dhcp_wan_gets_a_lease_from_a_real_server(lab, ctx, tmp_path):
    box, pc, isp = lab.host("box"), lab.host("pc"), lab.host("isp")
    lan_if, _ = lab.link(box, None, pc, None)
    wan_if, isp_if = lab.link(box, None, isp, "198.51.100.1/24")
    server = udhcpd(isp, tmp_path, isp_if, dns="198.51.100.1", lease=600)
    config = schema.parse({"network": {
        "lan": {"interface": lan_if, "address": "192.0.2.1/24"},
        "wan": {"interface": wan_if, "mode": "dhcp"},
    }})
    try:
        report = apply_network(config, netns=box.name, ctx=ctx)
        assert "dhcp" in report["wan"]
        lease = wait_for_lease(ctx, box.name, wan_if, timeout=30)
        assert lease is not None, "no DHCP lease"
        assert lease["gateway"] == "198.51.100.1"
        assert 50 <= int(lease["address"].split("/")[0].split(".")[3]) <= 60, lease   # the pool .50-.60
        assert addresses(box, wan_if) == [lease["address"]]
        assert "default via 198.51.100.1" in routes(box)
        assert network_status(netns=box.name, ctx=ctx, config=config)["lease"]["address"] == lease["address"]
        # applying again keeps the same client running
        apply_network(config, netns=box.name, ctx=ctx)
        assert report["wan"] == apply_network(config, netns=box.name, ctx=ctx)["wan"]
    finally:
        stop_network(box.name)
        server.kill()
        server.wait(5)
    assert subprocess.run(["pgrep", "-f", f"udhcpc -f -i {wan_if}"], capture_output=True).returncode != 0


@needs_netns
@pytest.mark.netns
@pytest.mark.slow
def test_a_dead_wan_dhcp_client_is_restarted_by_the_watchdog(lab, ctx, tmp_path):
    """udhcpc killed: the network service reports itself down and the supervisor starts a new client."""
    import asyncio
    import time

    from appliance.netservice import NetworkService
    from appliance.supervisor import Supervisor

    box, isp = lab.host("box"), lab.host("isp")
    lan_if, _ = lab.link(box, None, lab.host("pc"), None)
    wan_if, isp_if = lab.link(box, None, isp, "198.51.100.1/24")
    server = udhcpd(isp, tmp_path, isp_if)
    config = schema.parse({"network": {"lan": {"interface": lan_if, "address": "192.0.2.1/24"},
                                       "wan": {"interface": wan_if, "mode": "dhcp"}}})
    pattern = f"udhcpc -f -i {wan_if}"

    def client_pids() -> list[str]:
        return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()

    async def scenario() -> None:
        svc = NetworkService(ctx)
        svc.netns = box.name
        sup = Supervisor(ctx, {"network": svc})
        sup.watch_interval = 0.2
        await sup.start(config)
        try:
            assert await asyncio.to_thread(wait_for_lease, ctx, box.name, wan_if, 30) is not None
            first = client_pids()
            assert len(first) == 1 and svc.status().health == "ok"
            subprocess.run(["pkill", "-9", "-f", pattern], check=True)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and client_pids() in ([], first):
                await asyncio.sleep(0.2)
            again = client_pids()
            assert len(again) == 1 and again != first, "no new DHCP client"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and svc.status().health != "ok":
                await asyncio.sleep(0.2)
            assert svc.status().health == "ok"
        finally:
            await sup.stop()
    try:
        asyncio.run(scenario())
    finally:
        stop_network(box.name)
        server.kill()
        server.wait(5)
    assert client_pids() == []
