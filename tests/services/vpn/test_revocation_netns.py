"""Revoking a branch's certificate, real strongSwan in namespaces: the certificate tunnel is up, box A (head
office) revokes the bundle it issued, the SA ends and the branch's next IKE_SAs are refused (A's charon
finds the certificate in its CRL), a box A restarted still refuses it, and a newly issued bundle works."""
from __future__ import annotations

import time

import pytest

from appliance.clients import client_for
from appliance.service import ApplyError
from tests.netns import needs_netns
from tests.services.firewall.topology import fetch
from tests.services.vpn.offices import HOST_A, HOST_B, Offices, tunnel_state, wait_up
from tests.services.vpn.test_ipsec_certificates_netns import CERT, log_size

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns]
REACHED = (0, f"from {HOST_A}")


@pytest.fixture(scope="module")
def offices():
    net = Offices()
    yield net
    net.close()


def revoked_in_log(app, offset: int, timeout: float = 30) -> bool:
    log = app.ctx.log_dir("vpn") / "charon.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"certificate was revoked" in log.read_bytes()[offset:]:
            return True
        time.sleep(0.3)
    return False


def stays_down(app, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if tunnel_state(app)["state"] == "up":
            return False
        time.sleep(0.5)
    return True


def test_a_revoked_branch_is_refused_and_a_new_bundle_works_again(offices):
    a = offices.start("a", offices.document("a", **CERT))
    vpn_a = client_for(a.services["vpn"])
    first = vpn_a.issue_bundle("branch")
    offices.start("b", offices.document("b", **CERT, peer_bundle_secret=first))
    wait_up(a)
    assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=5) == REACHED

    seen = log_size(a)
    serials = vpn_a.revoke_peer("branch")
    assert len(serials) == 1
    assert tunnel_state(a)["state"] != "up"  # the existing SA is torn down at once
    assert revoked_in_log(a, seen), "box A's charon must refuse the revoked certificate"
    assert stays_down(a, 12)
    assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=2)[0] != 0
    with pytest.raises(ApplyError, match="revoked already"):
        vpn_a.revoke_peer("branch")

    seen = log_size(a)
    offices.stop("a")  # the CRL is state: a box that starts again loads it
    a = offices.start("a", offices.document("a", **CERT))
    assert revoked_in_log(a, seen) and stays_down(a, 8)

    offices.stop("b")  # a new bundle (a new certificate) brings the branch back
    second = client_for(a.services["vpn"]).issue_bundle("branch")
    offices.start("b", offices.document("b", **CERT, peer_bundle_secret=second))
    wait_up(a, timeout=60)
    deadline = time.monotonic() + 20
    while fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=2) != REACHED:
        assert time.monotonic() < deadline, tunnel_state(a)
    offices.stop("b")
    offices.stop("a")
