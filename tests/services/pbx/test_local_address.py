"""The address the PBX puts in Via, Contact and SDP follows the box's own: a WAN address renewed by
DHCP with another value is used once the short lookup cache expires; a public address wins for
peers outside."""
import pytest

from services.pbx.sip import stack as stack_module
from services.pbx.sip.stack import SipStack
from tests.netns import Lab, needs_netns

from .test_stack import Tu


@needs_netns
def test_our_address_follows_an_address_change(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(stack_module.time, "monotonic", lambda: now[0])
    stack = SipStack(Tu())
    with Lab() as lab:
        box, isp = lab.host("box"), lab.host("isp")
        box_if, _ = lab.link(box, "198.51.100.20/24", isp, "198.51.100.1/24")
        with box.enter():
            assert stack.local_ip("198.51.100.1") == "198.51.100.20"
            box.run("ip", "addr", "flush", "dev", box_if)
            box.run("ip", "addr", "add", "198.51.100.21/24", "dev", box_if)
            assert stack.local_ip("198.51.100.1") == "198.51.100.20"  # cached for a moment
            now[0] += stack_module.LOCAL_IP_TTL + 1
            assert stack.local_ip("198.51.100.1") == "198.51.100.21"
            stack.public_ip, stack.public_peers = "203.0.113.7", frozenset({"198.51.100.1"})
            assert stack.local_ip("198.51.100.1") == "203.0.113.7"
            assert stack.local_ip("198.51.100.2") == "198.51.100.21"  # not a trunk, not global


@pytest.mark.parametrize("peer, outside", [("8.8.8.8", True), ("10.1.2.3", False), ("127.0.0.1", False),
                                           ("not-an-ip", False)])
def test_global_peers_are_outside_only_with_a_public_address(peer, outside):
    stack = SipStack(Tu())
    assert stack.outside(peer) is False
    stack.public_ip = "203.0.113.7"
    assert stack.outside(peer) is outside
