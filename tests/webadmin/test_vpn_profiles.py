"""IKEv2 client profiles downloaded from the VPN page, parsed as the systems read them (plist, JSON,
PowerShell parameters) and checked against the running configuration: the server name, a CA that
verifies the box's VPN certificate (openssl verify), proposals of the box's road-warrior connection.
That charon accepts those proposals is tested with a real client in tests/services/vpn."""
from __future__ import annotations

import base64
import json
import plistlib
import re
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from services.vpn import profiles
from tests.webadmin.helpers import post
from tests.webadmin.test_vpn_pages import add_user

SERVER = "vpn.example.test"


def enable(admin_client, runtime):
    add_user(admin_client, "ann")
    add_user(admin_client, "bob")
    settings = {"enabled": "on", "ra_enabled": "on", "ra_server_name": SERVER, "ra_pool": "10.9.0.0/24",
                "port": "51820", "pool": "10.8.0.0/24", "endpoint": ""}
    assert post(admin_client, "/vpn/settings", settings, form_path="/vpn/").status_code == 302
    assert post(admin_client, "/vpn/accounts", {"user": "ann"}, form_path="/vpn/").status_code == 302
    return runtime.store.current().config


def verifies(tmp_path, ca_der: bytes, server_cert) -> bool:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(x509.load_der_x509_certificate(ca_der).public_bytes(Encoding.PEM))
    result = subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(server_cert)], capture_output=True,
                            text=True, timeout=10)
    return result.returncode == 0 and ": OK" in result.stdout


def box_proposals(runtime) -> tuple[list[str], list[str]]:
    """The road-warrior connection's IKE and ESP proposals in the applied swanctl.conf."""
    conf = (runtime.services["vpn"].paths.etc / "swanctl.conf").read_text()
    section = conf[conf.index("road-warriors {"):]
    ike = re.search(r"\n    proposals = (\S+)", section).group(1).split(",")
    esp = re.search(r"esp_proposals = (\S+)", section).group(1).split(",")
    return ike, esp


def download(admin_client, login, kind):
    response = admin_client.get(f"/vpn/accounts/{login}/profile/{kind}")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    return response.data


def test_apple_profile(admin_client, runtime, tmp_path):
    config = enable(admin_client, runtime)
    [account] = config.vpn.remote_access.accounts
    plist = plistlib.loads(download(admin_client, "ann", "mobileconfig"))
    [ca, vpn] = plist["PayloadContent"]
    assert plist["PayloadType"] == "Configuration" and ca["PayloadType"] == "com.apple.security.root"
    assert verifies(tmp_path, ca["PayloadContent"], runtime.services["vpn"].pki.server_cert)
    ike = vpn["IKEv2"]
    assert vpn["VPNType"] == "IKEv2" and ike["RemoteAddress"] == ike["RemoteIdentifier"] == SERVER
    assert ike["AuthenticationMethod"] == "None" and ike["ExtendedAuthEnabled"] == 1
    assert ike["AuthName"] == "ann" and ike["AuthPassword"] == account.password_secret
    assert ike["ServerCertificateIssuerCommonName"] == "OfficeBox VPN CA"
    sa = ike["IKESecurityAssociationParameters"]
    assert (sa["EncryptionAlgorithm"], sa["IntegrityAlgorithm"], sa["DiffieHellmanGroup"]) == \
        ("AES-256-GCM", "SHA2-384", 31)
    ike_box, esp_box = box_proposals(runtime)
    assert profiles.APPLE_IKE in ike_box and profiles.APPLE_ESP in esp_box
    # the same profile again: same identifiers, so the device replaces rather than adds it
    assert plistlib.loads(download(admin_client, "ann", "mobileconfig"))["PayloadUUID"] == plist["PayloadUUID"]


def test_windows_script(admin_client, runtime, tmp_path):
    enable(admin_client, runtime)
    script = download(admin_client, "ann", "windows").decode()
    assert "\r\n" in script
    add = re.search(r"^Add-VpnConnection (.*)$", script, re.M).group(1)
    assert f"-ServerAddress '{SERVER}'" in add and "-TunnelType Ikev2" in add and "-AuthenticationMethod Eap" in add
    ipsec = dict(re.findall(r"-(\w+) (\w+)", re.search(r"^Set-VpnConnectionIPsecConfiguration (.*)$", script,
                                                      re.M).group(1)))
    assert ipsec["DHGroup"] == ipsec["PfsGroup"] == "ECP384" and ipsec["IntegrityCheckMethod"] == "SHA384"
    assert ipsec["CipherTransformConstants"] == ipsec["EncryptionMethod"] == "GCMAES256"
    ca = re.search(r"FromBase64String\('([A-Za-z0-9+/=]+)'\)", script).group(1)
    assert verifies(tmp_path, base64.b64decode(ca), runtime.services["vpn"].pki.server_cert)
    assert "Cert:\\LocalMachine\\Root" in script
    lan = str(runtime.store.current().config.network.lan.address.network)
    assert f"-DestinationPrefix '{lan}'" in script
    ike_box, esp_box = box_proposals(runtime)
    assert profiles.WINDOWS_IKE in ike_box and profiles.WINDOWS_ESP in esp_box


def test_android_profile(admin_client, runtime, tmp_path):
    enable(admin_client, runtime)
    profile = json.loads(download(admin_client, "ann", "android"))
    assert profile["type"] == "ikev2-eap" and profile["local"]["eap_id"] == "ann"
    assert profile["remote"]["addr"] == profile["remote"]["id"] == SERVER
    assert verifies(tmp_path, base64.b64decode(profile["remote"]["cert"]), runtime.services["vpn"].pki.server_cert)
    ike_box, esp_box = box_proposals(runtime)
    assert profile["ike-proposal"] in ike_box and profile["esp-proposal"] in esp_box
    assert "password" not in json.dumps(profile).lower()


def test_profiles_only_for_accounts_and_known_kinds(admin_client, runtime):
    enable(admin_client, runtime)
    assert admin_client.get("/vpn/accounts/bob/profile/mobileconfig").status_code == 404  # no IKEv2 account
    assert admin_client.get("/vpn/accounts/ann/profile/pptp").status_code == 404
    page = admin_client.get("/vpn/").get_data(as_text=True)
    assert "/vpn/accounts/ann/profile/android" in page and "/vpn/accounts/ann/profile/windows" in page
