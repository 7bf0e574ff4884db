"""What the VPN tells the others: WAN listeners only for the methods on, its networks in the firewall's
vpn zone (checked by the real `nft -c`) and among the networks DNS answers."""
from __future__ import annotations

import shutil

import pytest

from appliance import schema
from appliance.contributions import Listener, Network, collect
from services.dns import DnsService
from services.firewall import nft
from services.firewall.ruleset import render
from tests.services.vpn.test_ipsec_config import TUNNEL


def mine(cfg, kind) -> list:
    return [c for c in collect(cfg, kind) if c.comment.startswith(("IPsec", "WireGuard", "tunnel"))]


WAN = {"interface": "wan0", "mode": "static", "address": "203.0.113.1/24", "gateway": "203.0.113.254"}


def config(tunnels=(TUNNEL,), wireguard=None, enabled=True):
    return schema.parse({"network": {"wan": WAN}, "vpn": {"enabled": enabled, "tunnels": list(tunnels),
                                                         "wireguard": wireguard or {}}})


def test_listeners_follow_the_methods_switched_on():
    names = {ls.name: ls for ls in mine(config(), Listener)}
    assert {"ike", "ike-nat-t", "ipsec-esp"} <= set(names) and "wireguard" not in names
    assert names["ike"].wan_peers == ("198.51.100.1",) and names["ipsec-esp"].protocol == "esp"
    hostname = {**TUNNEL, "peer": "branch.example.test"}
    assert mine(config([hostname]), Listener)[0].wan_peers == ()  # a name: from anyone, the PSK decides
    only_wg = {ls.name for ls in mine(config([], {"enabled": True, "port": 51999}), Listener)}
    assert only_wg == {"wireguard"}
    assert mine(config(enabled=False), Listener) == [] and mine(config([]), Listener) == []
    nets = mine(config(wireguard={"enabled": True}), Network)
    assert [(n.cidr, n.interface) for n in nets] == [("10.2.0.0/24", "ipsec0"), ("10.8.0.0/24", "wg-ob")]


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("unshare") is None, reason="needs nft")
def test_firewall_opens_ike_esp_wireguard_and_zones_the_vpn_networks(tmp_path):
    text = render(config(wireguard={"enabled": True}))
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    nft.check(path)
    assert 'iifname "wan0" ip saddr 198.51.100.1 udp dport 500 accept' in text
    assert 'iifname "wan0" ip saddr 198.51.100.1 udp dport 4500 accept' in text
    assert 'iifname "wan0" ip saddr 198.51.100.1 meta l4proto esp accept' in text
    assert 'iifname "wan0" udp dport 51820 accept' in text
    assert 'iifname "ipsec0" ip saddr 10.2.0.0/24' in text and 'iifname "wg-ob" ip saddr 10.8.0.0/24' in text
    off = render(config([], {"enabled": False}))
    assert "dport 500" not in off and "51820" not in off and "esp" not in off


def test_dns_answers_the_vpn_networks(tmp_path):
    from appliance.context import Context

    dns = DnsService(Context(tmp_path / "var", lab=True))
    allowed = dns._parts(config(wireguard={"enabled": True}))[3]
    assert {str(n) for n in allowed} >= {"10.2.0.0/24", "10.8.0.0/24"}
    assert "10.8.0.0/24" not in {str(n) for n in dns._parts(config(enabled=False))[3]}
