"""WireGuard remote access with a real `wg` peer made from the device's downloaded file.

The box runs WireGuard (the kernel's, or wireguard-go under the supervisor where the kernel has no
module); a road-warrior namespace on the Internet side builds its interface from the client file
(`wg-quick strip`, Address, AllowedIPs as routes) and reaches a LAN host; when the user is disabled
in the directory the box drops the peer at once.
"""
from __future__ import annotations

import shutil
import time

import pytest

from services.vpn.wireguard import add_device, client_conf, qr_svg
from tests.netns import needs_netns
from tests.services.firewall.topology import fetch
from tests.services.vpn.offices import BOX_A_LAN, HOST_A, ROAD, Offices

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(shutil.which("wg") is None, reason="needs wireguard-tools")]


@pytest.fixture
def net():
    offices = Offices()
    offices.add_road_warrior()
    yield offices
    offices.close()


def wait_for(predicate, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def road_warrior(net, conf: str, tmp_path) -> str:
    """Bring up the device's interface in the road namespace from its client file, like wg-quick."""
    name = f"wgc{net.lab.tag}"
    path = tmp_path / f"{name}.conf"
    path.write_text(conf)
    path.chmod(0o600)
    stripped = tmp_path / "stripped.conf"
    stripped.write_text(net.road.run("wg-quick", "strip", str(path)).stdout)
    if net.road.run("ip", "link", "add", name, "type", "wireguard", check=False).returncode != 0:
        net.procs.append(net.road.popen(["wireguard-go", "-f", name]))
        wait_for(lambda: net.road.run("ip", "link", "show", name, check=False).returncode == 0, what="wireguard-go")
    net.road.run("wg", "setconf", name, str(stripped))
    fields = dict(line.split(" = ", 1) for line in conf.splitlines() if " = " in line)
    net.road.run("ip", "address", "add", fields["Address"], "dev", name)
    net.road.run("ip", "link", "set", name, "up")
    for route in fields["AllowedIPs"].split(", "):
        net.road.run("ip", "route", "add", route, "dev", name)
    return name


def test_device_from_its_downloaded_file_reaches_the_lan_until_the_user_is_disabled(net, tmp_path):
    doc = net.document("a")
    doc["vpn"] = {"enabled": True, "wireguard": {"enabled": True, "interface": f"wgb{net.lab.tag}", "port": 51820}}
    doc["users"] = [{"login": "ann", "full_name": "Ann", "vpn_enabled": True},
                    {"login": "bob", "full_name": "Bob", "vpn_enabled": True}]
    device = add_device(doc["vpn"], "ann", "laptop")
    add_device(doc["vpn"], "bob", "phone")
    box = net.start("a", doc)
    service = box.services["vpn"]
    wait_for(lambda: len(service.devices()) == 2 and service._wg.listen_port() == 51820, what="the box's interface")

    config = box.store.current().config
    [ann] = [d for d in config.vpn.wireguard.devices if d.user == "ann"]
    conf = client_conf(config, ann)
    assert f"DNS = {BOX_A_LAN}" in conf and "Endpoint = 203.0.113.1:51820" in conf
    assert device["address"] == "10.8.0.2" and "<svg" in qr_svg(conf)
    road_warrior(net, conf, tmp_path)

    wait_for(lambda: fetch(net.road, f"http://{HOST_A}:8000/", timeout=2) == (0, "from 10.8.0.2"),
             what="the LAN host through WireGuard")
    row = next(r for r in service.devices() if r["user"] == "ann")
    assert row["allowed"] and row["latest_handshake"] > 0 and row["rx_bytes"] > 0
    assert row["endpoint"].startswith(ROAD)
    assert [(p["user"], p["name"]) for p in service.wireguard_peers()] == [("ann", row["name"])]  # not bob

    box.engine.update("admin", "ann may not use the VPN",
                      lambda d: d["users"][0].update(vpn_enabled=False))
    peers = {p.public_key for p in service._wg.peers()}
    assert ann.public_key not in peers and len(peers) == 1  # at once: the apply returned, bob stays
    assert fetch(net.road, f"http://{HOST_A}:8000/", timeout=2)[0] != 0
    assert not next(r for r in service.devices() if r["user"] == "ann")["allowed"]
    assert service.wireguard_peers() == []  # its peer is gone from the interface
