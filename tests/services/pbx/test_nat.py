"""A phone behind NAT (network namespaces, nftables masquerade with random source ports): it registers,
is called and talks, thanks to rport/received, the kept flow and RTP latching in the relay."""
import time
from contextlib import ExitStack

import pytest

from tests.netns import Lab, needs_netns

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB
from .pbxrunner import PbxRunner, config

pytestmark = [pytest.mark.slow, pytest.mark.netns, needs_netns,
              pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def test_phone_behind_nat_registers_and_talks(tmp_path):
    with Lab() as lab, ExitStack() as stack:
        box, nat, home = lab.host("box"), lab.host("nat"), lab.host("home")
        _, nat_wan = lab.link(box, "192.0.2.1/24", nat, "192.0.2.2/24")
        lab.link(nat, "10.9.0.1/24", home, "10.9.0.2/24")
        home.run("ip", "route", "add", "default", "via", "10.9.0.1")
        nat.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        nat.run("nft", "-f", "-", input=(
            f'table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100;\n'
            f'  oifname "{nat_wan}" masquerade random\n }}\n}}\n'))
        pbx = stack.enter_context(PbxRunner(tmp_path / "pbx", config([ALICE, BOB]), host="192.0.2.1", netns=box))
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                            registrar=pbx.registrar, host=home, addr="10.9.0.2"))
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar,
                                          host=box, addr="192.0.2.1"))
        alice.register()
        bob.register()
        [reg] = [r for r in pbx.svc.registrations() if r["extension"] == "201"]
        assert reg["contact"].split("@")[1].startswith("10.9.0.2")  # what the phone believes
        assert reg["source"].startswith("udp:192.0.2.2:")  # where it really is: the flow we keep
        assert reg["source"] != "udp:192.0.2.2:" + reg["contact"].split(":")[-1]  # the NAT changed the port
        bob.dial("201")  # the INVITE must go through the NAT mapping of the registration
        alice.answer()
        bob.wait_for("CALL_ESTABLISHED")
        alice.wait_rtp(tx=30, rx=30)  # alice's SDP says 10.9.0.2: only latching gets audio to her
        bob.wait_rtp(tx=30, rx=30)
        deadline = time.monotonic() + 2  # the media engine reports its figures 4 times a second
        while time.monotonic() < deadline:
            [call] = pbx.svc.active_calls()
            if call["relay"]["201"]["packets"] >= 30 and call["relay"]["202"]["forwarded"] >= 30:
                break
            time.sleep(0.05)
        assert call["relay"]["201"]["packets"] >= 30 and call["relay"]["202"]["forwarded"] >= 30
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
        deadline = time.monotonic() + 5
        while pbx.svc.active_calls() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pbx.svc.active_calls() == []
