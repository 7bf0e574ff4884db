"""Ruleset rendering and validation, checked by the real `nft -c` in an empty namespace."""
from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from appliance import schema
from appliance.apply import ApplyEngine, ConfigError
from appliance.store import ConfigStore
from services.firewall import nft
from services.firewall.ruleset import render
from services.firewall.service import FirewallService, input_chain

needs_nft = pytest.mark.skipif(shutil.which("nft") is None or shutil.which("unshare") is None,
                               reason="needs nft and unshare")
WAN = {"interface": "wan0", "mode": "static", "address": "198.51.100.2/24", "gateway": "198.51.100.1"}


def check(tmp_path, config) -> str:
    text = render(config)
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    nft.check(path)
    return text


@needs_nft
def test_every_feature_renders_a_ruleset_nft_accepts(tmp_path):
    config = schema.parse({
        "network": {"wan": WAN},
        "firewall": {
            "vpn_interfaces": ["wg0", "ppp*"], "vpn_networks": ["10.8.0.0/24"],
            "rules": [
                {"name": "ssh from office", "source_zone": "wan", "sources": ["203.0.113.0/24"], "ports": "22"},
                {"name": "no smb out", "source_zone": "lan", "destination": "wan", "action": "reject",
                 "protocol": "tcp", "ports": "137-139,445"},
                {"name": "ping", "source_zone": "vpn", "destination": "lan", "protocol": "icmp"},
                {"name": "off", "enabled": False, "ports": "1"},
            ],
            "port_forwards": [{"name": "web", "wan_port": 443, "to_address": "192.168.1.10"},
                              {"name": "voip", "protocol": "udp", "wan_port": 5061, "to_address": "192.168.1.11",
                               "to_port": 5060, "sources": ["203.0.113.7/32"]}],
            "admin_from_wan": ["203.0.113.0/28"], "ping_from_wan": True, "sip_peers": ["203.0.113.50/32"],
        },
        "proxy": {"transparent": True},
    })
    text = check(tmp_path, config)
    assert 'iifname "lan0" tcp dport 443 accept comment "anti-lockout"' in text
    assert 'iifname "wan0" tcp dport 443 dnat ip to 192.168.1.10:443 comment "web"' in text
    assert 'ip saddr 203.0.113.7/32 udp dport 5061 dnat ip to 192.168.1.11:5060' in text
    assert 'oifname "wan0" masquerade' in text
    assert 'iifname "lan0" tcp dport 80 fib daddr type != local redirect to :3129' in text
    assert 'tcp dport { 137-139, 445 } counter reject comment "no smb out"' in text
    assert '"off"' not in text
    assert 'iifname "ppp*" accept' in text and "ip saddr 10.8.0.0/24 meta secpath exists accept" in text


@needs_nft
def test_sip_and_rtp_follow_the_pbx_section(tmp_path):
    base = {"network": {"wan": WAN}}
    quiet = check(tmp_path, schema.parse(base))
    assert "dport 5060" not in quiet and "RTP" not in quiet  # no trunks: SIP stays closed from the WAN
    pbx = {"sip_port": 5062, "rtp_port_min": 20000, "rtp_port_max": 20099,
           "trunks": [{"name": "op", "host": "203.0.113.9"}, {"name": "byname", "host": "sip.example.com"}]}
    text = check(tmp_path, schema.parse({**base, "pbx": pbx}))
    assert 'iifname "wan0" ip saddr 203.0.113.9 udp dport 5062 accept' in text
    # RTP from the WAN: only from the trunks and the calls' media peers (the nft set the PBX's events feed)
    assert 'iifname "wan0" ip saddr 203.0.113.9 udp dport 20000-20099 counter accept comment "RTP from SIP peers"' \
        in text
    assert 'iifname "wan0" ip saddr @media4 udp dport 20000-20099 counter accept' in text
    assert 'iifname "wan0" udp dport 20000-20099 counter drop comment "RTP from others"' in text
    assert 'udp dport 20000-20099 accept comment "RTP"' not in text
    off = check(tmp_path, schema.parse({**base, "pbx": {**pbx, "enabled": False}}))
    assert "5062" not in off and "20000" not in off


def test_wan_none_means_no_nat_and_no_wan_rules():
    text = render(schema.parse({"network": {"wan": {"mode": "none"}},
                                "firewall": {"port_forwards": [{"name": "x", "wan_port": 80,
                                                                "to_address": "192.168.1.2"}]}}))
    assert "wan0" not in text and "masquerade" not in text and "dnat" not in text


@pytest.mark.parametrize("firewall, message", [
    ({"rules": [{"name": "r", "ports": "80-"}]}, "not a port"),
    ({"rules": [{"name": "r", "ports": "90-80"}]}, "low to high"),
    ({"rules": [{"name": "r", "protocol": "icmp", "ports": "80"}]}, "tcp or udp"),
    ({"rules": [{"name": 'bad"name', "ports": "80"}]}, "pattern"),
    ({"port_forwards": [{"name": "a", "wan_port": 80, "to_address": "192.168.1.2"},
                        {"name": "b", "wan_port": 80, "to_address": "192.168.1.3"}]}, "two port forwards"),
    ({"vpn_interfaces": ["wg0; drop"]}, "not an interface name"),
])
def test_bad_values_are_refused_with_a_clear_message(firewall, message):
    with pytest.raises(Exception, match=message):
        schema.parse({"firewall": firewall})


def test_input_chain_extraction():
    text = render(schema.parse({}))
    assert "anti-lockout" in input_chain(text) and "masquerade" not in input_chain(text)
    assert input_chain(None) == ""


@needs_nft
def test_lab_mode_renders_and_checks_but_loads_nothing(ctx):
    svc = FirewallService(ctx)
    engine = ApplyEngine(ctx, ConfigStore(ctx.db_path), {"firewall": svc})
    engine.apply({"firewall": {"admin_from_wan": ["203.0.113.0/24"]}}, "test", "lab")
    assert "203.0.113.0/24" in (ctx.etc_dir("firewall") / "ruleset.nft").read_text()
    asyncio.run(svc.start(engine.current_config()))
    assert svc.loaded is None and "lab mode" in svc.status().summary
    assert not (ctx.run_dir("firewall") / "ruleset.nft").exists()
    with pytest.raises(ConfigError):
        engine.update("test", "bad", lambda d: d["firewall"].update(burst=0))


def test_cross_section_checks(ctx):
    engine = ApplyEngine(ctx, ConfigStore(ctx.db_path), {"firewall": FirewallService(ctx)})
    with pytest.raises(ConfigError, match="203.0.113.5 is not on the LAN"):
        engine.validate({"firewall": {"port_forwards": [{"name": "x", "wan_port": 80, "to_address": "203.0.113.5"}]}})
    with pytest.raises(ConfigError, match="takes the admin port"):
        engine.validate({"firewall": {"admin_from_wan": ["203.0.113.0/24"], "port_forwards": [
            {"name": "x", "wan_port": 443, "to_address": "192.168.1.5"}]}})
    engine.validate({"firewall": {"vpn_networks": ["10.8.0.0/24"], "port_forwards": [
        {"name": "x", "wan_port": 443, "to_address": "10.8.0.5"}]}})


def test_media_addresses_from_the_bus_are_checked_and_written_with_timeouts():
    from appliance.bus import Bus
    from services.firewall import mediaset

    bus, written = Bus(), []
    bus.publish(mediaset.TOPIC, "call-1", {"addresses": ["198.51.100.5", "2001:db8::5"]}, retain=True)
    peers = mediaset.MediaPeers(bus, written.append, refresh=30)
    peers.start()
    try:
        bus.publish(mediaset.TOPIC, "call-2", {"addresses": ["sip.example.com", "203.0.113.7", 42]}, retain=True)
        assert peers.addresses() == {"198.51.100.5", "2001:db8::5", "203.0.113.7"}
        text = mediaset.script("officebox", peers.addresses())
        assert "add element inet officebox media4 { 198.51.100.5 timeout 300s, 203.0.113.7 timeout 300s }" in text
        assert "add element inet officebox media6 { 2001:db8::5 timeout 300s }" in text
        assert text.index("flush set inet officebox media4") < text.index("add element")  # one transaction
        bus.publish(mediaset.TOPIC, "call-1", None, retain=True)
        assert peers.addresses() == {"203.0.113.7"}
        for _ in range(100):  # the worker writes each change at once
            if written and written[-1] == {"203.0.113.7"}:
                break
            time.sleep(0.02)
        assert written[-1] == {"203.0.113.7"}
    finally:
        peers.stop()


@needs_nft
def test_a_pppoe_wan_is_its_link_with_nat_and_mss_clamping(tmp_path):
    """PPPoE: the WAN zone, port forwards and masquerade are pppd's link (wanppp, never a ppp* name of the
    PPTP clients' vpn zone), the Ethernet port carries no IP, and TCP's MSS is clamped to the link's MTU."""
    from appliance.network import PPP_IFNAME

    assert not PPP_IFNAME.startswith("ppp")
    config = schema.parse({
        "network": {"wan": {"interface": "wan0", "mode": "pppoe", "pppoe_user": "box@isp", "pppoe_password": "pw"}},
        "firewall": {"vpn_interfaces": ["ppp*"], "ping_from_wan": True,
                     "port_forwards": [{"name": "web", "wan_port": 443, "to_address": "192.168.1.10"}]},
    })
    text = check(tmp_path, config)
    assert f'oifname "{PPP_IFNAME}" masquerade' in text
    assert f'iifname "{PPP_IFNAME}" tcp dport 443 dnat ip to 192.168.1.10:443' in text
    assert f'iifname "{PPP_IFNAME}" icmp type echo-request' in text
    assert f'iifname "lan0" oifname "{PPP_IFNAME}" accept' in text
    assert f'oifname "{PPP_IFNAME}" tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu' in text
    assert '"wan0"' not in text and "udp sport 67" not in text  # no DHCP on a PPPoE WAN
    forward = text.split("chain forward", 1)[1]
    assert forward.index("maxseg") < forward.index("ct state established")  # before anything is accepted
    dhcp = check(tmp_path, schema.parse({"network": {"wan": {"interface": "wan0", "mode": "dhcp"}}}))
    assert "maxseg" not in dhcp and 'oifname "wan0" masquerade' in dhcp
