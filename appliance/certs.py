"""The box's certificate store: a self-signed certificate made at first start (pyopenssl), key kept 0600."""
from __future__ import annotations

import secrets
from pathlib import Path

from OpenSSL import crypto

from appliance.fsutil import atomic_write

VALID_DAYS = 3650


def ensure_certificate(directory: Path | str, common_name: str,
                       alt_names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> tuple[Path, Path]:
    """Return (cert_path, key_path) for `common_name`, creating a self-signed pair if missing."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    if cert_path.exists() and key_path.exists():
        key_path.chmod(0o600)
        return cert_path, key_path
    key = crypto.PKey()
    key.generate_key(crypto.TYPE_RSA, 2048)
    cert = crypto.X509()
    cert.set_version(2)
    cert.set_serial_number(secrets.randbits(63))
    cert.get_subject().CN = common_name[:64]
    cert.get_subject().O = "OfficeBox"
    cert.set_issuer(cert.get_subject())
    cert.gmtime_adj_notBefore(-3600)
    cert.gmtime_adj_notAfter(VALID_DAYS * 86400)
    cert.set_pubkey(key)
    sans = [f"DNS:{common_name}"] + [f"IP:{n}" if n[0].isdigit() else f"DNS:{n}" for n in alt_names]
    cert.add_extensions([
        crypto.X509Extension(b"subjectAltName", False, ", ".join(sans).encode()),
        crypto.X509Extension(b"basicConstraints", True, b"CA:FALSE"),
    ])
    cert.sign(key, "sha256")
    atomic_write(key_path, crypto.dump_privatekey(crypto.FILETYPE_PEM, key), mode=0o600)
    atomic_write(cert_path, crypto.dump_certificate(crypto.FILETYPE_PEM, cert), mode=0o644)
    return cert_path, key_path


def box_certificate(data_dir: Path, hostname: str) -> tuple[Path, Path]:
    """The certificate every TLS service of the box uses (web admin, mail...)."""
    return ensure_certificate(Path(data_dir) / "certs", hostname)
