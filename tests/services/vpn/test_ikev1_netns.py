"""IKEv1 for legacy peers, real strongSwan in namespaces: box A's tunnel with `ike_version: 1` against a
plain strongSwan peer in box B's namespace that speaks only IKEv1 (main mode, pre-shared key, AES-CBC,
SHA-256, MODP-2048 as old gateways offer): the tunnel comes up in main mode and carries LAN traffic as ESP;
and two boxes with certificates of A's CA over IKEv1."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from appliance.clients import client_for
from services.vpn.strongswan import CHARON, Paths, strongswan_conf
from tests.netns import needs_netns
from tests.services.firewall.topology import fetch
from tests.services.vpn.offices import BOX_A_WAN, BOX_B_WAN, HOST_A, HOST_B, PSK, Capture, Offices, wait_up
from tests.services.vpn.test_ipsec_certificates_netns import CERT

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(CHARON), reason="needs strongSwan")]
LEGACY = "aes256-sha256-modp2048"


@pytest.fixture
def offices():
    net = Offices()
    yield net
    net.close()


def legacy_peer(net) -> Paths:
    """A strongSwan gateway in box B's namespace configured for IKEv1 only, with its own charon."""
    top = net.top / "legacy"
    top.mkdir()
    paths = Paths(etc=top, run=top)
    paths.strongswan_conf.write_text(strongswan_conf(paths))
    paths.swanctl_conf.write_text(f"""connections {{
  hq {{
    version = 1
    aggressive = no
    remote_addrs = {BOX_A_WAN}
    proposals = {LEGACY}
    local {{
      auth = psk
      id = {BOX_B_WAN}
    }}
    remote {{
      auth = psk
      id = {BOX_A_WAN}
    }}
    children {{
      hq {{
        local_ts = 10.2.0.0/24
        remote_ts = 10.1.0.0/24
        esp_proposals = {LEGACY}
      }}
    }}
  }}
}}
secrets {{
  ike-hq {{
    id = {BOX_A_WAN}
    secret = "{PSK}"
  }}
}}
""")
    with open(top / "charon.log", "wb") as log:
        net.procs.append(net.box_b.popen([CHARON], env={**os.environ, "STRONGSWAN_CONF": str(paths.strongswan_conf)},
                                         stdout=log, stderr=subprocess.STDOUT))
    return paths


def test_an_ikev1_legacy_peer_comes_up_in_main_mode_and_carries_the_lan(offices):
    legacy_peer(offices)
    a = offices.start("a", offices.document("a", ike_version=1))
    row = wait_up(a, timeout=60)  # box A starts it; the legacy peer only answers
    assert row["ike_version"] == 1 and "MODP_2048" in row["algorithm"]
    [sa] = [sa for sa in a.services["vpn"].live()["sas"] if sa["name"] == "branch"]
    assert sa["version"] == "1"
    log = (a.ctx.log_dir("vpn") / "charon.log").read_bytes()
    assert b"initiating Main Mode IKE_SA branch" in log and b"Aggressive Mode" not in log

    deadline = time.monotonic() + 20
    while fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=2) != (0, f"from {HOST_A}"):
        assert time.monotonic() < deadline, row
    with Capture(offices.inet.name, offices.inet_a) as capture:
        assert fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=5) == (0, f"from {HOST_A}")
    assert capture.esp() >= 4 and all(proto != 6 for proto, _ in capture.ipv4())
    offices.stop("a")


def test_two_boxes_with_certificates_over_ikev1(offices):
    v1 = {**CERT, "ike_version": 1}
    a = offices.start("a", offices.document("a", **v1))
    issued = client_for(a.services["vpn"]).issue_bundle("branch")
    b = offices.start("b", offices.document("b", **v1, peer_bundle_secret=issued))
    assert wait_up(a, timeout=60)["ike_version"] == 1
    wait_up(b)
    sas = [sa for sa in a.services["vpn"].live()["sas"] if sa["name"] == "branch"]  # both boxes may start one
    up = [sa for sa in sas if sa["state"] == "ESTABLISHED"]
    assert up and all(sa["remote-id"] == "branch.officebox.office.lan" for sa in up)
    assert all(sa["version"] == "1" for sa in sas)
    deadline = time.monotonic() + 20
    while fetch(offices.host_a, f"http://{HOST_B}:8000/", timeout=2) != (0, f"from {HOST_A}"):
        assert time.monotonic() < deadline
    offices.stop("b")
    offices.stop("a")
