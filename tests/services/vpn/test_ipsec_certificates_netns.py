"""Site-to-site IPsec authenticated by certificates, real strongSwan in namespaces: box A (head office)
issues box B's bundle through the VPN client, B imports it, the tunnel comes up and carries LAN traffic
as ESP; a bundle from another CA (same identities) keeps the tunnel down on both sides."""
from __future__ import annotations

import time

import pytest

from appliance.clients import client_for
from services.vpn import bundle
from services.vpn.pki import ensure_site, issue_peer
from tests.netns import needs_netns
from tests.services.firewall.topology import fetch
from tests.services.vpn.offices import HOST_A, HOST_B, Capture, Offices, tunnel_state, wait_up

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns]
CERT = {"auth": "certificate", "psk": ""}


@pytest.fixture(scope="module")
def offices():
    net = Offices()
    yield net
    net.close()


def test_certificate_tunnel_from_an_issued_bundle_and_a_foreign_ca_refused(offices):
    a = offices.start("a", offices.document("a", **CERT))
    issued = client_for(a.services["vpn"]).issue_bundle("branch")
    b = offices.start("b", offices.document("b", **CERT, peer_bundle_secret=issued))
    row = wait_up(a)
    assert row["auth"] == "certificate"
    assert wait_up(b)["peer_identity"] == "officebox.office.lan"

    with Capture(offices.inet.name, offices.inet_a) as capture:
        assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=5) == (0, f"from {HOST_A}")
    assert capture.esp() >= 4 and all(proto != 6 for proto, _ in capture.ipv4())
    assert not capture.contains(f"from {HOST_A}".encode())
    offices.stop("b")

    # the same identities, signed by a CA box A never issued: each side refuses the other's certificate
    other = ensure_site(offices.top / "other-ca", "officebox.office.lan")
    key, cert = issue_peer(other.root, "branch.officebox.office.lan")
    foreign = bundle.make("branch", key, cert, other.site_cert.read_bytes(), other.ca.read_bytes())
    deadline = time.monotonic() + 30
    while tunnel_state(a)["state"] == "up" and time.monotonic() < deadline:
        time.sleep(0.3)
    seen_a, seen_b = log_size(a), log_size(b)
    b = offices.start("b", offices.document("b", **CERT, peer_bundle_secret=foreign))
    assert refused(a, seen_a) and refused(b, seen_b), "each side must refuse the other's certificate"
    assert tunnel_state(a)["state"] != "up" and tunnel_state(b)["state"] != "up"
    assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=2)[0] != 0
    offices.stop("b")
    offices.stop("a")


def log_size(app) -> int:
    log = app.ctx.log_dir("vpn") / "charon.log"
    return log.stat().st_size if log.exists() else 0


def refused(app, offset: int, timeout: float = 20) -> bool:
    """The box's charon was told AUTHENTICATION_FAILED: its peer refused its certificate."""
    log = app.ctx.log_dir("vpn") / "charon.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"received AUTHENTICATION_FAILED" in log.read_bytes()[offset:]:
            return True
        time.sleep(0.3)
    return False
