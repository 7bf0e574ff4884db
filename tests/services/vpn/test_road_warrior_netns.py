"""IKEv2 road warrior: a strongSwan client (its own charon and swanctl in a namespace) signs in with
EAP-MSCHAPv2, checks the box's certificate against the box's VPN CA, gets an address of the pool and
reaches a LAN host; a wrong password is refused; a user disabled in the directory is dropped at once."""
from __future__ import annotations

import base64
import json
import os
import plistlib
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.runtime import Runtime
from services.vpn import profiles
from services.vpn.strongswan import CHARON, Paths, strongswan_conf
from services.vpn.swanctl import list_sas, swanctl
from tests.netns import needs_netns
from tests.services.firewall.topology import fetch
from tests.services.vpn.offices import BOX_A_WAN, HOST_A, ROAD, Offices
from tests.webadmin.helpers import admin_client_for, post

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
    if not (paths.run / "charon.vici").exists():  # the client's charon is still starting
        return []
    return [sa for sa in list_sas(paths) if sa.get("state") == "ESTABLISHED"]


def start_box(net):
    """Box A with IKEv2 remote access and one account, ann's."""
    doc = net.document("a")
    doc["vpn"] = {"enabled": True, "remote_access": {"enabled": True, "accounts": [
        {"user": "ann", "password_secret": SECRET}]}}
    doc["users"] = [{"login": "ann", "full_name": "Ann", "vpn_enabled": True}]
    return net.start("a", doc)


def vpn_page_on(net, service):
    """An admin's web client whose runtime reads `service` (the box's, running in its namespace)."""
    runtime = Runtime(net.top / "web", lab=True)
    runtime.bootstrap()
    net.closers.append(runtime.store.close)
    admin = admin_client_for(runtime)
    runtime.services["vpn"] = service  # after the wizard: its apply never touches the box
    return admin


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
    box = start_box(net)
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

    admin = vpn_page_on(net, service)  # the VPN page of a web admin reading this running service
    page = admin.get("/vpn/").get_data(as_text=True)
    assert f'id="client-{row["id"]}"' in page
    listed = page[page.index(f'id="client-{row["id"]}"'):]
    listed = listed[:listed.index("</tr>")]
    assert "<td>ann</td>" in listed and row["virtual_ip"] in listed and row["outside"] in listed
    done = post(admin, f"/vpn/clients/{row['id']}/disconnect", {}, form_path="/vpn/")
    assert done.status_code == 302 and "ann was disconnected." in admin.get("/vpn/").get_data(as_text=True)
    assert service.clients() == []
    deadline = time.monotonic() + 10
    while client_sas(paths) and time.monotonic() < deadline:  # the client got the DELETE
        time.sleep(0.2)
    assert (paths.run / "charon.vici").exists() and client_sas(paths) == []


# what each system's names mean in strongSwan's (the vendors' documented values)
APPLE_NAMES = {"AES-256-GCM": "aes256gcm16", "SHA2-384": "prfsha384", 31: "x25519", 20: "ecp384"}
WINDOWS_NAMES = {"GCMAES256": "aes256gcm16", "SHA384": "prfsha384", "ECP384": "ecp384", "ECP256": "ecp256"}


def profile_settings(kind: str, data: bytes) -> tuple[str, bytes, tuple[str, str]]:
    """(server, CA in DER, (IKE, ESP) proposal in strongSwan's names) read from a downloaded profile."""
    if kind == "mobileconfig":
        ca, vpn = plistlib.loads(data)["PayloadContent"]
        ike = vpn["IKEv2"]["IKESecurityAssociationParameters"]
        child = vpn["IKEv2"]["ChildSecurityAssociationParameters"]
        names = [APPLE_NAMES[ike[k]] for k in ("EncryptionAlgorithm", "IntegrityAlgorithm", "DiffieHellmanGroup")]
        esp = [APPLE_NAMES[child["EncryptionAlgorithm"]], APPLE_NAMES[child["DiffieHellmanGroup"]]]
        return vpn["IKEv2"]["RemoteAddress"], ca["PayloadContent"], ("-".join(names), "-".join(esp))
    if kind == "windows":
        text = data.decode()
        ipsec = dict(re.findall(r"-(\w+) (\w+)", re.search(r"Set-VpnConnectionIPsecConfiguration (.*)", text).group(1)))
        ike = "-".join(WINDOWS_NAMES[ipsec[k]] for k in ("EncryptionMethod", "IntegrityCheckMethod", "DHGroup"))
        esp = "-".join(WINDOWS_NAMES[ipsec[k]] for k in ("CipherTransformConstants", "PfsGroup"))
        ca = base64.b64decode(re.search(r"FromBase64String\('([^']+)'\)", text).group(1))
        return re.search(r"-ServerAddress '([^']+)'", text).group(1), ca, (ike, esp)
    profile = json.loads(data)
    return profile["remote"]["addr"], base64.b64decode(profile["remote"]["cert"]), \
        (profile["ike-proposal"], profile["esp-proposal"])


def test_each_client_profile_connects_with_its_proposal_server_name_and_ca(net):
    box = start_box(net)
    service = box.services["vpn"]
    config = box.store.current().config
    wait_ready(service)
    profile = profiles.for_user(config, service.pki.ca.read_bytes(), service.server_id(config), "ann")
    for kind, (make, _, _) in profiles.KINDS.items():
        server, ca_der, proposals = profile_settings(kind, make(profile))
        ca = net.top / f"{kind}-ca.pem"
        ca.write_bytes(x509.load_der_x509_certificate(ca_der).public_bytes(Encoding.PEM))
        proc, paths = client(net, ca, "ann", SECRET, server=server, proposals=proposals)
        deadline = time.monotonic() + 20
        while not client_sas(paths) and time.monotonic() < deadline:
            time.sleep(0.3)
        sas = client_sas(paths)
        assert sas, f"the {kind} profile's settings did not connect"
        group = proposals[0].rsplit("-", 1)[1]
        assert sas[0]["dh-group"] == {"x25519": "CURVE_25519", "ecp384": "ECP_384"}[group], (kind, sas[0])
        assert sas[0]["encr-alg"] == "AES_GCM_16" and sas[0]["prf-alg"] == "PRF_HMAC_SHA2_384"
        wait_client(service, "ann")
        service.disconnect(wait_client(service, "ann")["id"])
        proc.kill()
        proc.wait(5)
