"""Malformed DHCP input is dropped (and counted), never crashes the parser or the server."""
from __future__ import annotations

import logging
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.dhcp import SERVICE
from services.dhcp import packet as P
from tests.netns import needs_netns
from tests.services.dhcp.clients import udhcpc
from tests.services.dhcp.helpers import LoopThread, in_netns, lan_config


def discover(mac: bytes, options: bytes) -> bytes:
    head = P.HEADER.pack(1, 1, 6, 0, 0x1234, 0, 0, b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4, mac + b"\0" * 10,
                         b"", b"")
    return head + P.MAGIC + options


@given(st.binary(max_size=600))
def test_parser_raises_only_malformed(data):
    try:
        P.parse(data)
    except P.MalformedPacket:
        pass


@given(st.binary(max_size=300))
def test_parser_with_valid_header_and_random_options(options):
    try:
        packet = P.parse(discover(b"\x02\0\0\0\0\1", options))
    except P.MalformedPacket:
        return
    assert packet.message_type in P.TYPE_NAMES


def test_truncated_option_is_malformed():
    with pytest.raises(P.MalformedPacket):
        P.parse(discover(b"\x02\0\0\0\0\1", bytes((53, 1, 1, 12, 10)) + b"abc"))


def test_build_then_parse_round_trip():
    request = P.Packet(xid=7, chaddr=b"\x02\x11\x22\x33\x44\x55" + b"\0" * 10,
                       options={P.MESSAGE_TYPE: bytes((P.DISCOVER,)), P.HOSTNAME: b"x" * 300})
    parsed = P.parse(P.build(request))
    assert parsed.mac == "02:11:22:33:44:55" and parsed.options[P.HOSTNAME] == b"x" * 300


GARBAGE = st.one_of(
    st.binary(max_size=700),
    st.binary(max_size=300).map(lambda o: discover(b"\x02\0\0\0\0\2", bytes((53, 1, 1)) + o)),
    st.binary(max_size=300).map(lambda o: discover(b"\x02\0\0\0\0\3", bytes((53, 1, 3, 50, 4)) + o)),
    st.binary(max_size=300).map(lambda o: discover(b"\x02\0\0\0\0\4", o)),
)


@needs_netns
@pytest.mark.slow
def test_server_survives_garbage_and_still_serves(lan, box_ctx, tmp_path, caplog):
    _lab, box, pc, box_if, pc_if = lan
    caplog.set_level(logging.INFO, logger="officebox.dhcp")
    pc.run("ip", "addr", "add", "10.77.0.250/24", "dev", pc_if)
    config = lan_config(box_if, dhcp={"conflict_probe": False})
    runner = LoopThread(box)
    svc = SERVICE(box_ctx)
    runner.call(svc.start(config))
    sent = []
    try:
        with in_netns(pc):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind(("10.77.0.250", 68))

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(GARBAGE)
        def blast(data):
            sock.sendto(data, ("10.77.0.1", 67))
            sent.append(data)

        blast()
        sock.sendto(struct.pack("!B", 1), ("255.255.255.255", 67))
        sock.close()
        pc.run("ip", "addr", "flush", "dev", pc_if)
        env = udhcpc(pc, pc_if, tmp_path / "after")
        assert env.get("ip", "").startswith("10.77.0.")
        figures = runner.sync(svc.status).figures
        assert figures["malformed"] > 0 and figures["errors"] == 0
        logged = [r for r in caplog.records if "malformed DHCP packet" in r.getMessage()]
        assert len(logged) == 1  # a flood from the LAN is said once a minute, not once a packet
    finally:
        runner.call(svc.stop())
        runner.close()
