"""RFC points real networks rely on: client identifier (RFC 2131 4.2), silence toward an unknown
INIT-REBOOT client (4.3.2), relay agent information echoed (RFC 3046), broadcast address (option 28)."""
from __future__ import annotations

import ipaddress

import pytest

from services.dhcp import SERVICE
from services.dhcp import packet as P
from tests.netns import needs_netns
from tests.services.dhcp.clients import dhclient, udhcpc
from tests.services.dhcp.helpers import LoopThread, lan_config
from tests.services.dhcp.rawclient import RawClient

pytestmark = [needs_netns, pytest.mark.slow]


@pytest.fixture
def served(lan, box_ctx):
    _lab, box, pc, box_if, pc_if = lan
    runner = LoopThread(box)
    svc = SERVICE(box_ctx)
    runner.call(svc.start(lan_config(box_if, dhcp={"conflict_probe": False,
                                                   "pools": [{"start": "10.77.0.50", "end": "10.77.0.59"}]})))
    yield runner, svc, pc, pc_if
    runner.call(svc.stop())
    runner.close()


def test_client_identifier_names_the_client(served, tmp_path):
    """Two systems on one network card (two client identifiers, one MAC) are two clients."""
    runner, svc, pc, pc_if = served
    first = udhcpc(pc, pc_if, tmp_path / "a", "-x", "0x3d:ff00000001")
    second = udhcpc(pc, pc_if, tmp_path / "b", "-x", "0x3d:ff00000002")
    assert first["ip"] != second["ip"]
    again = udhcpc(pc, pc_if, tmp_path / "c", "-x", "0x3d:ff00000001")
    assert again["ip"] == first["ip"]
    assert sorted(item["ip"] for item in runner.sync(svc.leases)) == sorted([first["ip"], second["ip"]])


def test_client_identifier_follows_the_client_to_another_card(served):
    _runner, _svc, pc, pc_if = served
    wifi, dock = RawClient(pc, pc_if, "02:00:00:00:0a:01"), RawClient(pc, pc_if, "02:00:00:00:0a:02")
    try:
        wifi_id = {"client_id": b"\x00laptop-42"}
        ip, ack = wifi.lease(**wifi_id)
        assert ack.options.get(P.CLIENT_ID) == b"\x00laptop-42"  # echoed (RFC 6842)
        offer = dock.exchange(P.DISCOVER, **wifi_id)
        assert offer is not None and offer.yiaddr == ip
    finally:
        wifi.close()
        dock.close()


def test_init_reboot_of_an_unknown_client_gets_silence(served):
    runner, _svc, pc, pc_if = served
    stranger = RawClient(pc, pc_if, "02:00:00:00:0b:01")
    try:  # a laptop back from another office's network, asking for its old address there
        assert stranger.exchange(P.REQUEST, requested_ip=ipaddress.IPv4Address("10.77.0.55").packed) is None
        assert runner.sync(lambda: _svc.server.counters["ignored"]) == 1
        nak = stranger.exchange(P.REQUEST, requested_ip=ipaddress.IPv4Address("192.0.2.9").packed)
        assert nak is not None and nak.message_type == P.NAK  # not on this network at all: NAK
        ip, _ = stranger.lease()
        ack = stranger.exchange(P.REQUEST, requested_ip=ip.packed)  # now it is known: its INIT-REBOOT works
        assert ack is not None and ack.message_type == P.ACK and ack.yiaddr == ip
    finally:
        stranger.close()


def test_dhclient_reboot_with_a_lease_from_another_network_falls_back(served, tmp_path):
    _runner, _svc, pc, pc_if = served
    folder = tmp_path / "isc"
    folder.mkdir()
    (folder / "dhclient.leases").write_text(f"""lease {{
  interface "{pc_if}";
  fixed-address 10.77.0.57;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier 10.77.0.254;
  renew 4 2099/01/01 00:00:00;
  rebind 4 2099/01/01 00:00:00;
  expire 4 2099/01/01 00:00:00;
}}
""")
    env = dhclient(pc, pc_if, folder)
    assert env["reason"] == "BOUND" and env["new_ip_address"] != "" and env["new_dhcp_server_identifier"] == "10.77.0.1"


def test_relay_agent_information_is_echoed_last(served):
    _runner, _svc, pc, pc_if = served
    pc.run("ip", "addr", "add", "10.77.0.2/24", "dev", pc_if)
    relay = RawClient(pc, pc_if, "02:00:00:00:0c:01", source="10.77.0.2", port=67)
    agent = bytes((1, 4)) + b"port" + bytes((2, 3)) + b"sw1"  # circuit id, remote id
    try:
        offer = relay.exchange(P.DISCOVER, to="10.77.0.1", giaddr="10.77.0.2", relay_agent=agent)
        assert offer is not None and offer.message_type == P.OFFER
        assert offer.options[P.RELAY_AGENT] == agent and list(offer.options)[-1] == P.RELAY_AGENT
        nak = relay.exchange(P.REQUEST, to="10.77.0.1", giaddr="10.77.0.2", relay_agent=agent,
                             requested_ip=ipaddress.IPv4Address("192.0.2.9").packed)
        assert nak is not None and nak.message_type == P.NAK and nak.options[P.RELAY_AGENT] == agent
    finally:
        relay.close()


def test_broadcast_address_is_sent(served, tmp_path):
    _runner, _svc, pc, pc_if = served
    env = udhcpc(pc, pc_if, tmp_path / "u")
    assert env["broadcast"] == "10.77.0.255"
    isc = dhclient(pc, pc_if, tmp_path / "isc")
    assert isc["new_broadcast_address"] == "10.77.0.255"


def test_ntp_server_is_advertised_only_while_the_box_serves_time(lan, box_ctx, tmp_path):
    _lab, box, pc, box_if, pc_if = lan
    runner = LoopThread(box)
    svc = SERVICE(box_ctx)
    dhcp = {"conflict_probe": False}
    runner.call(svc.start(lan_config(box_if, dhcp=dhcp, ntp={"enabled": True})))
    try:
        assert udhcpc(pc, pc_if, tmp_path / "on")["ntpsrv"] == "10.77.0.1"
        runner.call(svc.reload(lan_config(box_if, dhcp=dhcp, ntp={"enabled": False})))
        assert "ntpsrv" not in udhcpc(pc, pc_if, tmp_path / "off")
        runner.call(svc.reload(lan_config(box_if, dhcp={**dhcp, "ntp_servers": ["10.77.0.123"]},
                                          ntp={"enabled": False})))
        assert udhcpc(pc, pc_if, tmp_path / "own")["ntpsrv"] == "10.77.0.123"  # named servers: always
    finally:
        runner.call(svc.stop())
        runner.close()
