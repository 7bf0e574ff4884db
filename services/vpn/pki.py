"""The VPN's small certificate authority (ECDSA P-384, in the service's state dir, keys 0600): the CA,
the box's IKE server certificate for road warriors (again for a new server name), the box's own
site-to-site certificate (its identity kept for good, renewed before it expires) and the certificates
it issues to branch offices (their key leaves in the peer bundle, services/vpn/bundle.py)."""
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
RENEW_BEFORE = datetime.timedelta(days=30)


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

    @property
    def site_cert(self) -> Path:
        return self.root / "site.pem"

    @property
    def site_key(self) -> Path:
        return self.root / "site.key"

    def site_identity(self, default: str) -> str:
        """The identity of this box's site certificate; `default` before it was made."""
        return next(iter(_names_of(self.site_cert, fresh=False)), default)


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


def _names_of(path: Path, fresh: bool = True) -> list[str]:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return []
    if fresh and cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + RENEW_BEFORE:
        return []
    return [str(n.value) for n in san]


def _issue(ca_key, ca: x509.Certificate, key, name: str, usages: list) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName([_san(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA384()))


def _ca(root: Path, company: str) -> tuple[Pki, ec.EllipticCurvePrivateKey, x509.Certificate]:
    pki = Pki(root)
    root.mkdir(parents=True, exist_ok=True)
    ca_key = _key(root / "ca.key")
    if not pki.ca.exists():
        now = datetime.datetime.now(datetime.UTC)
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
    return pki, ca_key, x509.load_pem_x509_certificate(pki.ca.read_bytes())


def ensure(root: Path, server_name: str, company: str = "OfficeBox") -> Pki:
    """The CA and a current server certificate naming `server_name` (made when missing or stale)."""
    pki, ca_key, ca = _ca(root, company)
    if _names_of(pki.server_cert) != [server_name]:
        cert = _issue(ca_key, ca, _key(pki.server_key), server_name,
                      [ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE])
        atomic_write(pki.server_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return pki


def ensure_site(root: Path, default_identity: str, company: str = "OfficeBox") -> Pki:
    """The CA and this box's site-to-site certificate: made once naming `default_identity`, then renewed
    with the identity it has (branches pin it), so renaming the box does not break their tunnels."""
    pki, ca_key, ca = _ca(root, company)
    identity = pki.site_identity(default_identity)
    if _names_of(pki.site_cert) != [identity]:
        cert = _issue(ca_key, ca, _key(pki.site_key), identity,
                      [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
        atomic_write(pki.site_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return pki


def issue_peer(root: Path, identity: str, company: str = "OfficeBox") -> tuple[bytes, bytes]:
    """A new key and certificate naming `identity` for a branch office: (key PEM, certificate PEM); the
    key is not kept here."""
    _pki, ca_key, ca = _ca(root, company)
    key = ec.generate_private_key(ec.SECP384R1())
    cert = _issue(ca_key, ca, key, identity, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()), cert.public_bytes(serialization.Encoding.PEM))
