"""The WAN RTP range is open only toward the media addresses of calls in progress (mediaset.py), with
real peers in namespaces and the real nft:

    phone 192.0.2.10 (baresip) --- [box: firewall + PBX] 198.51.100.2 --- carrier 198.51.100.1 (SIP)
                                                                           198.51.100.5 (media), SIPp
                                                           attacker 203.0.113.66 --- (via the carrier)

The firewall runs in its own process (officebox-firewall, CAP_NET_ADMIN), as on the box: the PBX's pbx.media
events cross to it through the bus hub. The carrier calls a DID ringing the baresip phone; its SDP puts its
media on another address than its signalling. Audio flows both ways (SIPp echoes the phone's tone back to it).
Meanwhile and after the call, the attacker sprays the RTP range: nft drops every packet (its counters say so).
A new flow from the carrier's media address is let in while the call lives, and dropped once it ended."""
from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import schema
from appliance.bus import appliance_bus
from appliance.clients import client_for
from appliance.context import Context
from services.firewall import nft
from services.firewall.service import FirewallService
from tests.isolated import isolated
from tests.netns import needs_netns
from tests.services.firewall.topology import INET, LAN_BOX, LAN_PC, WAN_BOX, Edge
from tests.services.pbx.baresip import Baresip, have_baresip
from tests.services.pbx.conftest import ALICE
from tests.services.pbx.pbxrunner import PbxRunner
from tests.services.pbx.test_trunks import wait

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(not have_baresip() or not shutil.which("sipp"), reason="baresip and SIPp needed")]
MEDIA, ATTACKER, ATTACKER_GW = "198.51.100.5", "203.0.113.66", "203.0.113.1"
SCENARIO = Path(__file__).parent / "sipp" / "carrier_call.xml"

# sends one datagram from (source, sport) to every even port of first..last on `to`; prints the count
SPRAY = """
import socket, sys
src, sport, to, first, last = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, sport))
n = 0
for port in range(first, last + 1, 2):
    s.sendto(b"\\x80\\x00" + bytes(170), (to, port)); n += 1
print(n)
"""


def counters(box) -> dict[str, int]:
    """Packets counted by the WAN RTP rules, by comment."""
    text = nft.list_table(box.name)
    found = {}
    for line in text.splitlines():
        m = re.search(r'counter packets (\d+) bytes \d+ (?:accept|drop) comment "(RTP from [^"]+)"', line)
        if m:
            found[m.group(2)] = found.get(m.group(2), 0) + int(m.group(1))
    return found


def media_set(box) -> list[str]:
    out = box.run("nft", "list", "set", "inet", "officebox", "media4", check=False).stdout
    return re.findall(r"(\d+\.\d+\.\d+\.\d+)", out)


def spray(host, source: str, ports: tuple[int, int], sport: int = 0) -> int:
    out = host.run(sys.executable, "-c", SPRAY, source, str(sport), WAN_BOX, str(ports[0]), str(ports[1]))
    return int(out.stdout)


@pytest.fixture
def edge():
    net = Edge()
    try:
        inet_if = net.inet.run("ip", "-o", "-4", "addr", "show").stdout
        inet_if = next(line.split()[1] for line in inet_if.splitlines() if f" {INET}/" in line)
        net.inet.run("ip", "addr", "add", f"{MEDIA}/24", "dev", inet_if)
        net.inet.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        net.attacker = net.lab.host("attacker")
        net.lab.link(net.inet, f"{ATTACKER_GW}/24", net.attacker, f"{ATTACKER}/24")
        net.attacker.run("ip", "route", "add", "default", "via", ATTACKER_GW)
        yield net
    finally:
        net.close()


def test_wan_rtp_open_only_toward_the_calls_media_addresses(edge, tmp_path):
    base = 21000 + 200 * random.randrange(45)
    rtp = (base, base + 199)
    document = edge.document(
        {"new_connections_per_second": 100000, "burst": 100000},  # the flood limit stays out of it
        pbx={"sip_port": 5060, "lab_sip_port": 5060, "rtp_port_min": rtp[0], "rtp_port_max": rtp[1],
                "lab_rtp_port_min": rtp[0], "lab_rtp_port_max": rtp[1], "rtp_timeout": 0,
                "trunks": [{"name": "carrier", "host": INET, "port": 5060}],
                "dids": [{"number": "5000", "destination": "201"}]})
    document["users"].append(ALICE)
    config = schema.parse(document)
    fw_ctx = Context(tmp_path / "fw", lab=False)  # on the box: its process loads the rules (the box namespace's)
    with PbxRunner(tmp_path / "box", config, host="0.0.0.0", netns=edge.box) as pbx, \
            isolated(fw_ctx, FirewallService(fw_ctx), document, edge.box, bus=appliance_bus(pbx.ctx)) as fw, \
            Baresip("alice", user="201", password=ALICE["sip_secret"], registrar=f"{LAN_BOX}:5060",
                    host=edge.pc, addr=LAN_PC, auto_answer=True) as alice:
        assert media_set(edge.box) == []
        alice.register()
        carrier = edge.inet.popen(
            ["sipp", f"{WAN_BOX}:5060", "-sf", str(SCENARIO), "-s", "5000", "-i", INET, "-p", "5060",
             "-mi", MEDIA, "-mp", "40000", "-rtp_echo", "-m", "1", "-l", "1", "-timeout", "30s",
             "-timeout_error", "-nostdin", "-trace_err", "-error_file", str(tmp_path / "sipp-errors.log")],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            alice.wait_for("CALL_ESTABLISHED")
            alice.wait_rtp(tx=50, rx=50)  # the phone's tone came back from the carrier's media address
            during = counters(edge.box)
            sprayed = spray(edge.attacker, ATTACKER, rtp)
            dropped = counters(edge.box).get("RTP from others", 0) - during.get("RTP from others", 0)
            assert dropped == sprayed, f"nft dropped {dropped} of the attacker's {sprayed} packets"
            assert MEDIA in media_set(edge.box)
            fresh = spray(edge.inet, MEDIA, (rtp[0], rtp[0] + 2), sport=41000)  # a new flow from the carrier
            accepted = counters(edge.box)["RTP from call media peers"] - during.get("RTP from call media peers", 0)
            assert accepted == fresh
            rx = alice.rtp_stats()["rx"]
            alice.wait_rtp(rx=rx + 20)  # the call goes on, its audio unharmed
            out, _ = carrier.communicate(timeout=40)
            assert carrier.returncode == 0, out.decode(errors="replace")
        finally:
            if carrier.poll() is None:
                carrier.kill()
                carrier.wait(5)
        alice.wait_for("CALL_CLOSED")
        wait(lambda: not pbx.svc.active_calls(), what="the call gone from the PBX")
        wait(lambda: media_set(edge.box) == [], what="the media set emptied at the end of the call")
        before = counters(edge.box)
        sprayed = spray(edge.attacker, ATTACKER, rtp)
        late = spray(edge.inet, MEDIA, (rtp[0], rtp[0] + 2), sport=41002)
        after = counters(edge.box)
        assert after["RTP from others"] - before["RTP from others"] == sprayed + late
        assert after["RTP from call media peers"] == before["RTP from call media peers"]
        shown = {c["rule"]: c["packets"] for c in client_for(fw.service).counters()}  # the web admin's view
        assert shown["RTP from others"] == after["RTP from others"], shown
