"""Site-to-site IPsec between two OfficeBox VPN services with the real strongSwan, in namespaces.

A host behind box A reaches a host behind box B through the tunnel only; on the Internet link the
traffic is ESP and the plaintext never shows; the tunnel comes back by itself after box B restarts;
a wrong key keeps it down.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from tests.netns import needs_netns
from tests.services.firewall.topology import fetch
from tests.services.vpn.offices import HOST_A, HOST_B, Capture, Offices, tunnel_state, wait_up

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns]
MARKER = "officebox-plaintext-7d1c2a"


@pytest.fixture(scope="module")
def offices():
    net = Offices()
    yield net
    net.close()


def test_tunnel_carries_lan_traffic_encrypted_and_comes_back_after_the_peer_restarts(offices):
    a, b = offices.start("a"), offices.start("b")
    row = wait_up(a)
    assert row["peer"] == "198.51.100.1" and "AES_GCM_16" in row["algorithm"]
    assert "CURVE_25519" in row["algorithm"]
    wait_up(b)

    with Capture(offices.inet.name, offices.inet_a) as capture:
        code, body = fetch(offices.host_a, f"http://{HOST_B}:8000/{MARKER}", timeout=5)
    assert (code, body) == (0, f"from {HOST_A}")  # routed, not NATed: the LAN address arrives
    assert capture.esp() >= 4
    assert not capture.contains(MARKER.encode()) and not capture.contains(f"from {HOST_A}".encode())
    assert all(proto != 6 for proto, _ in capture.ipv4())  # no TCP in clear on the Internet link
    after = tunnel_state(a)
    assert after["bytes_out"] > 0 and after["bytes_in"] > 0 and after["packets_out"] >= 3
    assert a.services["vpn"].status().health == "ok"

    offices.stop("b")  # box B goes away: A sees its peer dead (DPD), then B is back and the tunnel too
    deadline = time.monotonic() + 40
    while tunnel_state(a)["state"] == "up" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert tunnel_state(a)["state"] != "up"
    assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=2)[0] != 0
    offices.start("b")
    wait_up(a, timeout=60)
    assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=5) == (0, f"from {HOST_A}")
    offices.stop("b")
    offices.stop("a")


def test_tunnel_comes_back_after_the_peer_daemon_crashes(offices):
    a, b = offices.start("a"), offices.start("b")
    wait_up(a)
    charon = b.supervisor.units["vpn"].children["charon"]
    first = charon.proc.pid
    os.kill(first, signal.SIGKILL)  # no DELETE sent: A still believes in the old SAs
    deadline = time.monotonic() + 30
    while (not charon.running or charon.proc.pid == first) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert charon.restarts == 1
    wait_up(b, timeout=60)
    deadline = time.monotonic() + 30
    while fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=2) != (0, f"from {HOST_A}"):
        assert time.monotonic() < deadline, tunnel_state(a)
    offices.stop("b")
    offices.stop("a")


def test_a_wrong_key_keeps_the_tunnel_down(offices):
    a = offices.start("a")
    b = offices.start("b", offices.document("b", psk="Another-key-entirely-99x"))
    time.sleep(6)
    assert tunnel_state(a)["state"] != "up" and tunnel_state(b)["state"] != "up"
    assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=2)[0] != 0
    assert a.services["vpn"].status().health == "degraded"
    offices.stop("b")
    offices.stop("a")
