"""Typed contributions: what the PBX and the proxy bring to the firewall and to provisioning, computed
from the configuration alone, and nothing from a switched-off service."""
from appliance import schema
from appliance.contributions import Endpoint, Listener, Redirect, collect


def test_pbx_and_proxy_contributions_follow_their_sections():
    config = schema.parse({"pbx": {"sip_port": 5062, "tcp": False, "rtp_port_min": 20000, "rtp_port_max": 20099,
                                   "trunks": [{"name": "op", "host": "203.0.113.9"},
                                              {"name": "named", "host": "sip.example.com"}]},
                           "proxy": {"transparent": True, "intercept_port": 3130}})
    assert collect(config, Endpoint) == [Endpoint("sip", 5062, ("udp",))]
    assert collect(config, Listener) == [Listener("sip", "udp", (5062, 5062), ("203.0.113.9",), "SIP trunks"),
                                         Listener("rtp", "udp", (20000, 20099), (), "RTP")]
    assert collect(config, Redirect) == [Redirect("proxy", 80, 3130, "transparent proxy")]
    lab = collect(config, Endpoint, lab=True)
    assert lab == [Endpoint("sip", config.pbx.lab_sip_port, ("udp",))]


def test_no_trunk_address_means_nothing_open_from_the_wan_and_off_means_nothing():
    config = schema.parse({"pbx": {"trunks": [{"name": "named", "host": "sip.example.com"}]}})
    assert {ls.name: ls.wan_peers for ls in collect(config, Listener)} == {"sip": None, "rtp": None}
    off = schema.parse({"pbx": {"enabled": False}, "proxy": {"enabled": False, "transparent": True}})
    assert collect(off, Listener) == [] and collect(off, Endpoint) == [] and collect(off, Redirect) == []
