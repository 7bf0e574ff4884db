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
from services.vpn.swanctl import list_sas, swanctl
from tests.netns import needs_netns
from tests.services.firewall.topology import fetch
from tests.services.vpn.offices import BOX_A_WAN, HOST_A, ROAD, Offices

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(CHARON), reason="needs strongSwan")]
SECRET = "Ann-vpn-secret-42"


@pytest.fixture
def net():
    offices = Offices()
    offices.add_road_warrior()
    yield offices
    offices.close()


def client(net, ca: Path, login: str, password: str, server: str = BOX_A_WAN,
           proposals: tuple[str, str] | None = None) -> tuple[subprocess.Popen, Paths]:
    """A strongSwan client in the road namespace; `proposals` (IKE, ESP): offer only those."""
    top = Path(tempfile.mkdtemp(prefix="ob-rw-", dir=net.top))
    paths = Paths(etc=top, run=top)
    paths.strongswan_conf.write_text(strongswan_conf(paths))
    shutil.copy(ca, top / "ca.pem")
    ike = f"\n    proposals = {proposals[0]}" if proposals else ""
    esp = f"\n        esp_proposals = {proposals[1]}" if proposals else ""
    paths.swanctl_conf.write_text(f"""connections {{
  office {{
    version = 2
    remote_addrs = {server}
    vips = 0.0.0.0{ike}
    local {{
      auth = eap-mschapv2
      eap_id = {login}
    }}
    remote {{
      auth = pubkey
      id = {server}
      cacerts = {top / 'ca.pem'}
    }}
    children {{
      office {{
        remote_ts = 10.1.0.0/24
        start_action = start{esp}
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


def client_sas(paths: Paths) -> list[dict]:
    return [sa for sa in list_sas(paths) if sa.get("state") == "ESTABLISHED"]


def wait_ready(service, timeout: float = 20) -> None:
    """Until the box's charon has loaded the road-warrior connection (a client tries only once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (service.paths.run / "charon.vici").exists() and \
                "road-warriors" in swanctl(service.paths, "--list-conns").stdout:
            return
        time.sleep(0.2)
    raise AssertionError("the box's charon did not load the road-warrior connection")


def wait_client(service, login: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.refresh()
        mine = [c for c in service.clients() if c["user"] == login]
        if mine:
            return mine[0]
        time.sleep(0.3)
    raise AssertionError(f"{login} is not among the connected clients: {service.clients()}")


def test_connected_client_listed_with_user_and_virtual_ip_and_disconnected(net):
    doc = net.document("a")
    doc["vpn"] = {"enabled": True, "remote_access": {"enabled": True, "accounts": [
        {"user": "ann", "password_secret": SECRET}]}}
    doc["users"] = [{"login": "ann", "full_name": "Ann", "vpn_enabled": True}]
    box = net.start("a", doc)
    service = box.services["vpn"]
    assert service.clients() == []
    wait_ready(service)
    _, paths = client(net, service.pki.ca, "ann", SECRET)
    assert reaches(net, 30)
    row = wait_client(service, "ann")
    [mine] = client_sas(paths)
    assert row["virtual_ip"] == mine["local-vips"][0] and row["virtual_ip"].startswith("10.9.0.")
    assert row["outside"].startswith(f"{ROAD}:") and 0 <= time.time() - row["since"] < 60
    assert row["bytes_in"] > 0 and row["bytes_out"] > 0  # the HTTP request and its answer

    assert service.disconnect("999999") == ""  # not a connected client: nothing ended
    assert client_sas(paths)
    assert service.disconnect(row["id"]) == "ann"
    assert service.clients() == []
    deadline = time.monotonic() + 10
    while client_sas(paths) and time.monotonic() < deadline:  # the client got the DELETE
        time.sleep(0.2)
    assert client_sas(paths) == []
