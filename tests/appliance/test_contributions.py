"""Typed contributions: what the PBX and the proxy bring to the firewall and to provisioning, computed
from the configuration alone, and nothing from a switched-off service."""
from appliance import schema
from appliance.contributions import DhcpOption, Endpoint, Listener, Redirect, collect


def sip(endpoints):
    return [e for e in endpoints if e.name == "sip"]


def pbx(listeners):
    return [ls for ls in listeners if ls.name in ("sip", "rtp")]


def test_pbx_and_proxy_contributions_follow_their_sections():
    config = schema.parse({"pbx": {"sip_port": 5062, "tcp": False, "rtp_port_min": 20000, "rtp_port_max": 20099,
                                   "trunks": [{"name": "op", "host": "203.0.113.9"},
                                              {"name": "named", "host": "sip.example.com"}]},
                           "proxy": {"transparent": True, "intercept_port": 3130}})
    assert sip(collect(config, Endpoint)) == [Endpoint("sip", 5062, ("udp",))]
    assert pbx(collect(config, Listener)) == [Listener("sip", "udp", (5062, 5062), ("203.0.113.9",), "SIP trunks"),
                                         Listener("rtp", "udp", (20000, 20099), (), "RTP")]
    assert collect(config, Redirect) == [Redirect("proxy", 80, 3130, "transparent proxy")]
    lab = sip(collect(config, Endpoint, lab=True))
    assert lab == [Endpoint("sip", config.pbx.lab_sip_port, ("udp",))]


def test_no_trunk_address_means_nothing_open_from_the_wan_and_off_means_nothing():
    config = schema.parse({"pbx": {"trunks": [{"name": "named", "host": "sip.example.com"}]}})
    assert {ls.name: ls.wan_peers for ls in pbx(collect(config, Listener))} == {"sip": None, "rtp": None}
    off = schema.parse({"pbx": {"enabled": False}, "proxy": {"enabled": False, "transparent": True},
                        "mail": {"enabled": False}})
    assert collect(off, Listener) == [] and sip(collect(off, Endpoint)) == [] and collect(off, Redirect) == []


def test_dhcp_options_and_the_phones_time_server_come_from_the_services_that_serve_them():
    """Before: DHCP read the provisioning and ntp sections itself, and phones were always sent the box
    as time server, NTP on or off."""
    import ipaddress

    from services.dhcp import ntp_servers, provisioning_url
    from services.provisioning.files import Provisioner
    box = ipaddress.IPv4Address("192.168.1.1")
    config = schema.parse({"provisioning": {"http_port": 8090}})
    assert DhcpOption(66, "http://{box}:8090/") in collect(config, DhcpOption)
    assert provisioning_url(config, box) == "http://192.168.1.1:8090/" and ntp_servers(config, box) == [box]
    assert Provisioner(config, "192.168.1.1", 5060).site.ntp == "192.168.1.1"
    quiet = schema.parse({"provisioning": {"enabled": False}, "ntp": {"enabled": False}})
    assert provisioning_url(quiet, box) == "" and ntp_servers(quiet, box) == []
    assert Provisioner(quiet, "192.168.1.1", 5060).site.ntp == ""
    own = schema.parse({"dhcp": {"provisioning_url": "https://prov.example/", "ntp_servers": ["192.0.2.1"]}})
    assert provisioning_url(own, box) == "https://prov.example/"
    assert ntp_servers(own, box) == [ipaddress.IPv4Address("192.0.2.1")]
