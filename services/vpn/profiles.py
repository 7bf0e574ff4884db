"""IKEv2 client profiles for one user: the box's server name, its VPN CA and the proposals to offer.

    mobileconfig(...)  Apple (macOS, iOS): the CA as a root payload and an IKEv2 VPN payload with EAP
    powershell(...)    Windows: imports the CA, Add-VpnConnection, Set-VpnConnectionIPsecConfiguration
    sswan(...)         the strongSwan Android app's profile (JSON)

Each client offers one proposal the box's road-warrior connection accepts (strongswan.road_warriors):
Apple and Android AES-256-GCM, PRF SHA-384 and Curve25519; Windows has no Curve25519, so NIST P-384.
"""
from __future__ import annotations

import base64
import json
import plistlib
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

NAME = "OfficeBox VPN"
# strongSwan's names of what each profile asks for (all in DEFAULT_IKE / DEFAULT_ESP)
APPLE_IKE, APPLE_ESP = "aes256gcm16-prfsha384-x25519", "aes256gcm16-x25519"
WINDOWS_IKE, WINDOWS_ESP = "aes256gcm16-prfsha384-ecp384", "aes256gcm16-ecp384"
ANDROID_IKE, ANDROID_ESP = APPLE_IKE, APPLE_ESP
APPLE_SA = {"EncryptionAlgorithm": "AES-256-GCM", "IntegrityAlgorithm": "SHA2-384", "DiffieHellmanGroup": 31}
WINDOWS_IPSEC = {"AuthenticationTransformConstants": "GCMAES256", "CipherTransformConstants": "GCMAES256",
                 "EncryptionMethod": "GCMAES256", "IntegrityCheckMethod": "SHA384", "DHGroup": "ECP384",
                 "PfsGroup": "ECP384"}


@dataclass(frozen=True)
class Profile:
    server: str           # the name or address clients dial, also the box's IKE identity
    login: str
    password: str         # EAP-MSCHAPv2 secret (only the Apple profile carries it)
    ca_pem: bytes
    routes: tuple[str, ...]  # the networks reached through the tunnel (LAN)

    @property
    def ca_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.ca_pem).public_bytes(Encoding.DER)

    @property
    def ca_name(self) -> str:
        cert = x509.load_pem_x509_certificate(self.ca_pem)
        return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value

    def uuid(self, part: str) -> str:
        """Stable per server, user and part: downloading again replaces the installed profile."""
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{part}.{self.login}.{self.server}.officebox")).upper()


def mobileconfig(p: Profile) -> bytes:
    ident = f"officebox.vpn.{p.server}.{p.login}"
    ca = {"PayloadType": "com.apple.security.root", "PayloadVersion": 1, "PayloadIdentifier": f"{ident}.ca",
          "PayloadUUID": p.uuid("ca"), "PayloadDisplayName": p.ca_name, "PayloadContent": p.ca_der}
    ikev2 = {"RemoteAddress": p.server, "RemoteIdentifier": p.server, "LocalIdentifier": p.login,
             "AuthenticationMethod": "None", "ExtendedAuthEnabled": 1, "AuthName": p.login,
             "AuthPassword": p.password, "ServerCertificateIssuerCommonName": p.ca_name,
             "ServerCertificateCommonName": p.server, "DeadPeerDetectionRate": "Medium", "EnablePFS": 1,
             "IKESecurityAssociationParameters": dict(APPLE_SA),
             "ChildSecurityAssociationParameters": dict(APPLE_SA)}
    vpn = {"PayloadType": "com.apple.vpn.managed", "PayloadVersion": 1, "PayloadIdentifier": f"{ident}.vpn",
           "PayloadUUID": p.uuid("vpn"), "PayloadDisplayName": NAME, "UserDefinedName": NAME,
           "VPNType": "IKEv2", "IKEv2": ikev2}
    top = {"PayloadType": "Configuration", "PayloadVersion": 1, "PayloadIdentifier": ident,
           "PayloadUUID": p.uuid("profile"), "PayloadDisplayName": f"{NAME} ({p.login})",
           "PayloadContent": [ca, vpn]}
    return plistlib.dumps(top)


def powershell(p: Profile) -> bytes:
    ipsec = " ".join(f"-{k} {v}" for k, v in WINDOWS_IPSEC.items())
    add = (f"-Name '{NAME}' -ServerAddress '{p.server}' -TunnelType Ikev2 -AuthenticationMethod Eap "
           "-EncryptionLevel Required -SplitTunneling -RememberCredential -Force")
    routes = "".join(f"Add-VpnConnectionRoute -ConnectionName '{NAME}' -DestinationPrefix '{net}'\n"
                     for net in p.routes)
    script = f"""# {NAME} (IKEv2) for {p.login}: run in a PowerShell started as administrator.
# Then connect to "{NAME}" and sign in as {p.login} with your VPN password.
$ErrorActionPreference = 'Stop'
$ca = Join-Path $env:TEMP 'officebox-vpn-ca.cer'
[IO.File]::WriteAllBytes($ca, [Convert]::FromBase64String('{base64.b64encode(p.ca_der).decode()}'))
Import-Certificate -FilePath $ca -CertStoreLocation Cert:\\LocalMachine\\Root | Out-Null
Remove-Item $ca
Add-VpnConnection {add}
Set-VpnConnectionIPsecConfiguration -ConnectionName '{NAME}' {ipsec} -Force
{routes}"""
    return script.replace("\n", "\r\n").encode()


def sswan(p: Profile) -> bytes:
    profile = {"uuid": p.uuid("android").lower(), "name": NAME, "type": "ikev2-eap",
               "remote": {"addr": p.server, "id": p.server, "cert": base64.b64encode(p.ca_der).decode()},
               "local": {"eap_id": p.login}, "ike-proposal": ANDROID_IKE, "esp-proposal": ANDROID_ESP,
               "split-tunneling": {"subnets": " ".join(p.routes)}}
    return json.dumps(profile, indent=2).encode()


def for_user(config, ca_pem: bytes, server: str, login: str) -> Profile | None:
    """The profile of `login`'s IKEv2 account in `config`, or None when they have none."""
    account = next((a for a in config.vpn.remote_access.accounts if a.user == login), None)
    if account is None:
        return None
    return Profile(server, login, account.password_secret, ca_pem,
                   tuple(map(str, config.network.lan_networks())))


# kind -> (maker, mimetype, file name suffix)
KINDS = {"mobileconfig": (mobileconfig, "application/x-apple-aspen-config", ".mobileconfig"),
         "windows": (powershell, "text/plain", "-windows.ps1"),
         "android": (sswan, "application/vnd.strongswan.profile", ".sswan")}
