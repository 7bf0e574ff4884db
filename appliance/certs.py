"""The box's certificate store: a self-signed certificate made at first start, key kept 0600.

Built with `cryptography`'s X.509 builder (pyOpenSSL 26 dropped its extension API); pyOpenSSL
contexts can load the same PEM files.
"""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.fsutil import atomic_write

VALID_DAYS = 3650


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def ensure_certificate(directory: Path | str, common_name: str,
                       alt_names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> tuple[Path, Path]:
    """Return (cert_path, key_path) for `common_name`, creating a self-signed pair if missing."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    if cert_path.exists() and key_path.exists():
        key_path.chmod(0o600)
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OfficeBox"),
    ])
    now = datetime.datetime.now(datetime.UTC)
    sans = [_san(common_name)] + [_san(n) for n in alt_names if n != common_name]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    atomic_write(key_path, key_pem, mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert_path, key_path


def box_certificate(data_dir: Path, hostname: str) -> tuple[Path, Path]:
    """The certificate every TLS service of the box uses (web admin, mail...)."""
    return ensure_certificate(Path(data_dir) / "certs", hostname)
