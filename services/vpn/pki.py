"""The VPN's small certificate authority: a CA and the box's IKE server certificate (ECDSA P-384),
made once in the service's state dir (keys 0600) and again for a new server name."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from appliance.fsutil import atomic_write

IKE_INTERMEDIATE = ObjectIdentifier("1.3.6.1.5.5.8.2.2")  # macOS/iOS want it on an IKE server certificate
CA_DAYS, SERVER_DAYS = 3650, 825


@dataclass(frozen=True)
class Pki:
    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP384R1())
    atomic_write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), mode=0o600)
    return key


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _names_of(path: Path) -> list[str]:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return []
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30):
        return []
    return [str(n.value) for n in san]


def ensure(root: Path, server_name: str, company: str = "OfficeBox") -> Pki:
    """The CA and a current server certificate naming `server_name` (made when missing or stale)."""
    pki = Pki(root)
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _key(root / "ca.key")
    if not pki.ca.exists():
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, company[:64]),
                          x509.NameAttribute(NameOID.COMMON_NAME, "OfficeBox VPN CA")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(ca_key, hashes.SHA384()))
        atomic_write(pki.ca, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    if _names_of(pki.server_cert) != [server_name]:
        ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
        key = _key(pki.server_key)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name[:64])]))
                .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
                .add_extension(x509.SubjectAlternativeName([_san(server_name)]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE]),
                               critical=False)
                .sign(ca_key, hashes.SHA384()))
        atomic_write(pki.server_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return pki
