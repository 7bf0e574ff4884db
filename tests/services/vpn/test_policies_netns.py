"""Per-branch policies, real strongSwan in namespaces: box A (head office) lets the branch behind box B reach
only TCP port 8000 and ICMP on its LAN (the tunnel's traffic selectors, narrowed by box A whichever box
starts the SA); host B reaches host A's port 8000 and pings it, port 8001 on the same host is not carried
(and is, once the policy is gone)."""
from __future__ import annotations

import sys
import time

import pytest

from tests.netns import needs_netns
from tests.services.firewall.topology import ECHO_SERVER, fetch
from tests.services.vpn.offices import HOST_A, HOST_B, Offices, wait_up

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns]
REACHED = (0, f"from {HOST_B}")


@pytest.fixture(scope="module")
def offices():
    net = Offices()
    for port in ("8000", "8001"):
        net.procs.append(net.host_a.popen([sys.executable, "-c", ECHO_SERVER, HOST_A, port]))
    yield net
    net.close()


def ping(host, address: str) -> bool:
    return host.run("ping", "-c", "1", "-W", "2", address, check=False, timeout=10).returncode == 0


def test_the_branch_reaches_only_the_services_the_head_office_allows(offices):
    a = offices.start("a", offices.document("a", allowed_services=["tcp/8000", "icmp"]))
    b = offices.start("b")
    for box in (a, b):  # box B asked for the whole LAN: the SA it has is the narrowed one
        wait_up(box)
    sas = a.services["vpn"].live()["sas"]
    [child] = [c for sa in sas if sa["name"] == "branch" for c in sa["child-sas"].values()]
    assert sorted(child["local-ts"]) == ["10.1.0.0/24[icmp]", "10.1.0.0/24[tcp/8000]"]

    deadline = time.monotonic() + 20
    while fetch(offices.host_b, f"http://{HOST_A}:8000/", timeout=2) != REACHED:
        assert time.monotonic() < deadline, "the allowed service must be reached"
    assert ping(offices.host_b, HOST_A)
    assert fetch(offices.host_b, f"http://{HOST_A}:8001/", timeout=3)[0] != 0  # another port of the same host
    # the selectors bind both ways: this side's own connections to the branch are not carried either
    assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=3)[0] != 0

    offices.stop("b")  # box B starts the SA this time: box A narrows what B proposes in the same way
    offices.stop("a")
    b = offices.start("b")
    time.sleep(1)
    a = offices.start("a", offices.document("a", allowed_services=["tcp/8000", "icmp"]))
    wait_up(b, timeout=60)
    deadline = time.monotonic() + 20
    while fetch(offices.host_b, f"http://{HOST_A}:8000/", timeout=2) != REACHED:
        assert time.monotonic() < deadline, "the allowed service must be reached"
    assert fetch(offices.host_b, f"http://{HOST_A}:8001/", timeout=3)[0] != 0

    offices.stop("a")  # without a policy the same port is carried: what kept it out was the policy
    a = offices.start("a")
    wait_up(a, timeout=60)
    deadline = time.monotonic() + 20
    while fetch(offices.host_b, f"http://{HOST_A}:8001/", timeout=2) != REACHED:
        assert time.monotonic() < deadline, "without a policy the whole LAN is reached"
    offices.stop("a")
    offices.stop("b")
