"""IKEv2 road warrior: a strongSwan client (its own charon and swanctl in a namespace) signs in with
EAP-MSCHAPv2, checks the box's certificate against the box's VPN CA, gets an address of the pool and
reaches a LAN host; a wrong password is refused; a user disabled in the directory is dropped at once."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from services.vpn.strongswan import CHARON, Paths, strongswan_conf
from tests.netns import needs_netns
from tests.services.firewall.topology import fetch
from tests.services.vpn.offices import BOX_A_WAN, HOST_A, Offices

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(CHARON), reason="needs strongSwan")]
SECRET = "Ann-vpn-secret-42"


@pytest.fixture
def net():
    offices = Offices()
    offices.add_road_warrior()
    yield offices
    offices.close()


def client(net, ca: Path, login: str, password: str) -> tuple[subprocess.Popen, Paths]:
    top = Path(tempfile.mkdtemp(prefix="ob-rw-", dir=net.top))
    paths = Paths(etc=top, run=top)
    paths.strongswan_conf.write_text(strongswan_conf(paths))
    shutil.copy(ca, top / "ca.pem")
    paths.swanctl_conf.write_text(f"""connections {{
  office {{
    version = 2
    remote_addrs = {BOX_A_WAN}
    vips = 0.0.0.0
    local {{
      auth = eap-mschapv2
      eap_id = {login}
    }}
    remote {{
      auth = pubkey
      id = {BOX_A_WAN}
      cacerts = {top / 'ca.pem'}
    }}
    children {{
      office {{
        remote_ts = 10.1.0.0/24
        start_action = start
      }}
    }}
  }}
}}
secrets {{
  eap-me {{
    id = {login}
    secret = "{password}"
  }}
}}
""")
    with open(top / "charon.log", "wb") as log:
        proc = net.road.popen([CHARON], env={**os.environ, "STRONGSWAN_CONF": str(paths.strongswan_conf)},
                              stdout=log, stderr=subprocess.STDOUT)
    net.procs.append(proc)
    return proc, paths


def reaches(net, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, body = fetch(net.road, f"http://{HOST_A}:8000/", timeout=1)
        if code == 0:
            return body.startswith("from 10.9.0.")
        time.sleep(0.3)
    return False


def test_eap_mschapv2_client_reaches_the_lan_wrong_password_refused_disabled_user_dropped(net):
    doc = net.document("a")
    account = {"user": "ann", "password_secret": SECRET}
    doc["vpn"] = {"enabled": True, "remote_access": {"enabled": True, "accounts": [account]}}
    doc["users"] = [{"login": "ann", "full_name": "Ann", "vpn_enabled": True}]
    box = net.start("a", doc)
    ca = box.services["vpn"].pki.ca

    wrong, _ = client(net, ca, "ann", "not-the-secret-000")
    assert not reaches(net, 6)
    wrong.kill()
    wrong.wait(5)

    client(net, ca, "ann", SECRET)
    assert reaches(net, 30), "the road warrior did not reach the LAN host"
    service = box.services["vpn"]
    service.refresh()
    [sa] = [sa for sa in service._sas if sa["name"] == "road-warriors" and sa["state"] == "ESTABLISHED"]
    assert sa.get("remote-eap-id") == "ann" and sa.get("remote-vips", [""])[0].startswith("10.9.0.")

    box.engine.update("admin", "ann may not use the VPN", lambda d: d["users"][0].update(vpn_enabled=False))
    service.refresh()
    assert not [sa for sa in service._sas if sa["name"] == "road-warriors" and sa["state"] == "ESTABLISHED"]
    assert fetch(net.road, f"http://{HOST_A}:8000/", timeout=2)[0] != 0
